import Foundation

/// What a caller expects of the VDIs it made on a copy-on-write SR: every VHD it knows of
/// (hidden ones too), with the guest bytes each reads, its parent, its attributes and its
/// persistent lock. Coalescing is invisible here: it changes files, never what a listed VDI
/// reads, its nearest listed ancestor, or whether it has children.
struct VDITreeModel: Equatable {
    struct Node: Equatable {
        var data: [UInt8]
        var parent: String?
        var hidden = false
        var readOnly = false
        var label = ""
        var locked = false
    }

    /// The VHD block size: sizes round up to it (Docs/FileSR.md).
    static let block = 2 << 20
    /// The chain limit (Docs/copy-on-write.md).
    static let maximumChain = 30

    var nodes: [String: Node] = [:]

    static func rounded(_ size: Int) -> Int { (size + block - 1) / block * block }

    var listed: [String] { nodes.filter { !$0.value.hidden }.keys.sorted() }

    func children(of vdi: String) -> [String] { nodes.filter { $0.value.parent == vdi }.keys.sorted() }

    func hasChildren(_ vdi: String) -> Bool { nodes.values.contains { $0.parent == vdi } }

    /// The parent sr_scan reports: the nearest ancestor that is not hidden.
    func listedParent(of vdi: String) -> String? {
        var current = nodes[vdi]?.parent
        while let candidate = current, let node = nodes[candidate], node.hidden { current = node.parent }
        return current.flatMap { nodes[$0] != nil ? $0 : nil }
    }

    /// VHDs in the chain from `vdi` up (an upper bound: coalescing only shortens chains).
    func chainLength(_ vdi: String) -> Int {
        var length = 0
        var current: String? = vdi
        while let name = current, let node = nodes[name], length <= Self.maximumChain + 1 {
            length += 1
            current = node.parent
        }
        return length
    }

    /// Writable leaves: listed, without children, not read-only.
    var writable: [String] { listed.filter { !hasChildren($0) && nodes[$0]?.readOnly == false } }

    mutating func create(_ vdi: String, size: Int) {
        nodes[vdi] = Node(data: [UInt8](repeating: 0, count: Self.rounded(size)))
    }

    mutating func write(_ vdi: String, at offset: Int, _ bytes: [UInt8]) {
        nodes[vdi]?.data.replaceSubrange(offset..<offset + bytes.count, with: bytes)
    }

    /// vdi_snapshot of a leaf: `destination` takes the data and the old place in the chain.
    mutating func snapshot(_ source: String, as destination: String) {
        guard let node = nodes[source] else { return }
        nodes[destination] = Node(data: node.data, parent: node.parent, readOnly: true)
        nodes[source]?.parent = destination
    }

    /// vdi_clone: of a leaf, through a new base copy `base`; of a VDI with children, a new child of it.
    mutating func clone(_ source: String, as destination: String, base: String?) {
        guard let node = nodes[source] else { return }
        if let base {
            nodes[base] = Node(data: node.data, parent: node.parent, readOnly: true, label: "base copy")
            nodes[source]?.parent = base
            nodes[destination] = Node(data: node.data, parent: base)
        } else {
            nodes[destination] = Node(data: node.data, parent: source)
        }
    }

    mutating func resize(_ vdi: String, to size: Int) {
        guard let count = nodes[vdi]?.data.count, Self.rounded(size) > count else { return }
        nodes[vdi]?.data += [UInt8](repeating: 0, count: Self.rounded(size) - count)
    }

    /// vdi_delete: a VDI with children is hidden; a leaf goes, with every hidden ancestor left childless.
    mutating func delete(_ vdi: String) {
        guard let node = nodes[vdi], !node.hidden else { return }
        if hasChildren(vdi) {
            nodes[vdi]?.hidden = true
            nodes[vdi]?.readOnly = false
            nodes[vdi]?.label = ""
            return
        }
        nodes[vdi] = nil
        var current = node.parent
        while let parent = current, let ancestor = nodes[parent], ancestor.hidden, !hasChildren(parent) {
            nodes[parent] = nil
            current = ancestor.parent
        }
    }
}

/// Spawning, timing and killing built binaries without Foundation's Process (whose exit is
/// observed asynchronously): `posix_spawn`, then `waitpid` with WNOHANG tells whether the child
/// had already exited when it is killed.
struct SpawnedProduct {
    let pid: pid_t

    /// Starts `path` with `arguments`; stdin and stdout are /dev/null, stderr goes to `errorFile`.
    static func start(_ path: String, _ arguments: [String], environment: [String: String], errorFile: String) throws -> SpawnedProduct {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, errorFile, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let merged = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        var argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, path, &actions, nil, &argv, &envp)
        guard status == 0 else {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "posix_spawn \(path): \(status)"])
        }
        return SpawnedProduct(pid: pid)
    }

    /// How the child ended: its exit status, or 128 + the signal that killed it.
    static func decode(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// The exit status if the child has already ended (it is reaped), nil while it runs.
    func poll() -> Int32? {
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        return Self.decode(status)
    }

    /// Waits for the child to end.
    func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return Self.decode(status)
    }

    /// SIGKILL unless it has already ended; returns (was it still running, how it ended).
    func kill() -> (running: Bool, status: Int32) {
        if let status = poll() { return (false, status) }
        Glibc.kill(pid, SIGKILL)
        return (true, wait())
    }
}

extension VDITreeModel {
    /// How `listed` (sr_scan, limited to `known` when given) differs from the model's listed VDIs:
    /// the set, and each VDI's size, nearest listed parent, read-only flag, base-copy label and lock.
    func differences(from listed: [String: CopyOnWriteSR.Listed], known: Set<String>? = nil) -> [String] {
        let seen = Set(listed.keys).filter { known?.contains($0) ?? true }
        let expected = Set(self.listed)
        var problems: [String] = []
        if seen != expected {
            problems.append(
                "listed \(seen.subtracting(expected).sorted()) not in the model, model's \(expected.subtracting(seen).sorted()) not listed")
        }
        for vdi in seen.intersection(expected).sorted() {
            guard let entry = listed[vdi], let node = nodes[vdi] else { continue }
            var wrong: [String] = []
            if entry.size != UInt64(node.data.count) { wrong.append("size \(entry.size) != \(node.data.count)") }
            if entry.parent != listedParent(of: vdi) {
                wrong.append("parent \(entry.parent ?? "none") != \(listedParent(of: vdi) ?? "none")")
            }
            if entry.readOnly != node.readOnly { wrong.append("read_only \(entry.readOnly) != \(node.readOnly)") }
            if (entry.label == "base copy") != (node.label == "base copy") { wrong.append("label '\(entry.label)' != '\(node.label)'") }
            if entry.locked != node.locked { wrong.append("locked \(entry.locked) != \(node.locked)") }
            if !wrong.isEmpty { problems.append("VDI \(vdi): " + wrong.joined(separator: ", ")) }
        }
        return problems
    }
}

extension CopyOnWriteSR {
    /// What an operation must never leave behind once recovered: names in the SR root starting with
    /// a dot other than `.sm` (temporaries), anything else there but VHD and lock files, files in `.sm/vdi` that are not a VDI's attributes
    /// (`<uuid>.tmp.<pid>`, attributes of a VDI with no file), and intent records in `.sm/journal`.
    func leftovers() -> [String] {
        let manager = FileManager.default
        var found: [String] = []
        let names = (try? manager.contentsOfDirectory(atPath: root)) ?? []
        found += names.filter { $0.hasPrefix(".") && $0 != ".sm" }
        // Besides VHD files, only persistent lock files (`<vdi>.vhd.xenlk.<host>.<id>.f<r|w>`)
        // belong in the root: no lock mutex, link or server-clock file once no verb runs.
        found += names.filter { name in
            !name.hasPrefix(".") && !(name.count == 40 && name.hasSuffix(".vhd"))
                && !(name.contains(".vhd.xenlk.") && (name.hasSuffix(".fw") || name.hasSuffix(".fr")))
        }
        for name in (try? manager.contentsOfDirectory(atPath: "\(root)/.sm/vdi")) ?? [] {
            let isAttributes = name.count == 36 && UUID(uuidString: name) != nil
            if !isAttributes || !names.contains("\(name).vhd") { found.append(".sm/vdi/\(name)") }
        }
        found += ((try? manager.contentsOfDirectory(atPath: "\(root)/.sm/journal")) ?? []).map { ".sm/journal/\($0)" }
        return found.sorted()
    }
}
