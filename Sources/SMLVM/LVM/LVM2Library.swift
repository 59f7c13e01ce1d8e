import CLVM2Cmd
import SMCore

#if canImport(Glibc)
    import Glibc
#endif

/// liblvm2cmd, loaded with dlopen when the first `LVMHandle` opens, not linked: the library and
/// the thirteen it needs (libdevmapper, libudev, libsystemd, libselinux, libgcrypt ...) cost an
/// LVM driver most of its start-up, and `--help`, a refused argument or a verb answered from the
/// driver's own state never call LVM (Docs/performance.md). `CLVM2Cmd` gives the declarations
/// only; its module map links nothing.
///
/// The soname is the one of the liblvm2cmd this was built against (Debian 12: 2.03); the
/// package depends on it by name, as dpkg-shlibdeps cannot see a dlopen (Scripts/build-package.sh).
struct LVM2Library {
    static let soname = "liblvm2cmd.so.2.03"

    let setLogFunction: @convention(c) (lvm2_log_fn_t?) -> Void
    let initialise: @convention(c) () -> UnsafeMutableRawPointer?
    let run: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?) -> Int32
    let exit: @convention(c) (UnsafeMutableRawPointer?) -> Void

    nonisolated(unsafe) private static var loaded: LVM2Library?

    /// The library, loaded on first use (RTLD_NOW: a missing symbol is found here, not in the
    /// middle of a command). Never unloaded: liblvm2cmd keeps global state for the process.
    static func shared() throws(StorageError) -> LVM2Library {
        if let loaded { return loaded }
        _ = dlerror()
        guard let library = dlopen(soname, RTLD_NOW | RTLD_LOCAL) else {
            throw .io("cannot load \(soname) (LVM's command library, package liblvm2cmd2.03): \(lastError())")
        }
        func symbol<T>(_ name: String, as type: T.Type) throws(StorageError) -> T {
            guard let address = dlsym(library, name) else {
                throw .io("\(soname) has no \(name): \(lastError())")
            }
            return unsafeBitCast(address, to: type)
        }
        let found = LVM2Library(
            setLogFunction: try symbol("lvm2_log_fn", as: (@convention(c) (lvm2_log_fn_t?) -> Void).self),
            initialise: try symbol("lvm2_init", as: (@convention(c) () -> UnsafeMutableRawPointer?).self),
            run: try symbol("lvm2_run", as: (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?) -> Int32).self),
            exit: try symbol("lvm2_exit", as: (@convention(c) (UnsafeMutableRawPointer?) -> Void).self))
        loaded = found
        return found
    }

    private static func lastError() -> String {
        dlerror().map { String(cString: $0) } ?? "no reason given"
    }
}
