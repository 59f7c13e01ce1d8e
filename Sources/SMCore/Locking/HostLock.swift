import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A host-local `flock` under `<lock_dir>/<SR-UUID>/`, held until `release()` or process exit.
///
/// Lock files are never removed (removing a lock file others wait on is a race); they live on
/// tmpfs and vanish at reboot.
public final class HostLock {
    public enum Mode { case shared, exclusive }

    private var descriptor: Int32
    public let path: String

    private init(descriptor: Int32, path: String) {
        self.descriptor = descriptor
        self.path = path
    }

    deinit { release() }

    public func release() {
        if descriptor >= 0 {
            Syscall.close(descriptor)
            descriptor = -1
        }
    }

    /// Waits up to `timeout` seconds for the lock; EBUSY naming the lock after that.
    public static func acquire(_ path: String, mode: Mode, timeout: Double) throws(StorageError) -> HostLock {
        try Syscall.makeDirectories(Syscall.parentDirectory(of: path))
        let descriptor = try Syscall.open(path, O_RDWR | O_CREAT, mode: 0o600)
        let operation = (mode == .shared ? LOCK_SH : LOCK_EX) | LOCK_NB
        let deadline = Syscall.monotonicNow() + timeout
        var delay: UInt32 = 1_000
        while true {
            switch Syscall.attempt({ flock(descriptor, operation) }) {
            case .success:
                return HostLock(descriptor: descriptor, path: path)
            case .failure(.wouldBlock):
                if Syscall.monotonicNow() >= deadline {
                    Syscall.close(descriptor)
                    throw StorageError(code: .resourceBusy,
                                       message: "another operation holds \(path) (waited \(Int(timeout)) s)")
                }
                usleep(delay)
                delay = min(delay * 2, 50_000)
            case .failure(let code):
                Syscall.close(descriptor)
                throw .system(code, "flock", path: path)
            }
        }
    }
}
