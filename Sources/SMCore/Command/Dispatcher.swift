import SystemPackage

/// The one `switch` over requests: takes the host-local locks, calls the driver, renders output.
public enum Dispatcher {
    /// Performs `request` for a driver of type `D` made from `configuration`: sr_probe is the
    /// driver type's own (`Driver.probe`: it validates the keys it needs and names no SR, so no
    /// instance is made and no SR lock taken); every other verb checks `D.requiredKeys`, makes
    /// the driver and goes through `perform(_:verb:on:host:)`.
    public static func perform<D: Driver>(
        _ request: Request, verb: Verb, as driver: D.Type,
        configuration: DeviceConfiguration, host: HostEnvironment
    ) throws -> String? {
        if case .srProbe = request {
            return ResultDocument.render(try D.probe(configuration: configuration, host: host).element)
        }
        for key in D.requiredKeys { _ = try configuration.required(key) }
        let instance = try D(configuration: configuration, host: host)
        return try perform(request, verb: verb, on: instance, host: host)
    }

    /// Performs `request` and returns what to print on stdout (nil for nothing).
    ///
    /// Locks: SR-wide verbs hold `<lock_dir>/<SR>/sr` exclusively; VDI verbs hold it shared and
    /// each named VDI's `<lock_dir>/<SR>/<VDI>` exclusively, in sorted order (no deadlock).
    public static func perform<D: Driver>(
        _ request: Request, verb: Verb, on driver: D,
        host: HostEnvironment
    ) throws -> String? {
        let locks = try takeLocks(for: request, verb: verb, host: host)
        defer { locks.forEach { $0.release() } }
        Diagnostics.debug("\(D.name) \(verb.rawValue) holding \(locks.count) host lock(s)")
        switch request {
        case .srCreate(let sr, let size):
            try driver.srCreate(sr: sr, size: size)
        case .srDelete(let sr):
            try driver.srDelete(sr: sr)
        case .srAttach(let sr):
            try driver.srAttach(sr: sr)
        case .srDetach(let sr):
            try driver.srDetach(sr: sr)
        case .srScan(let sr):
            return ResultDocument.render(try driver.srScan(sr: sr).element)
        case .srContentType(let sr):
            let type = try driver.srContentType(sr: sr)
            return ResultDocument.render(ResultElement("sr", children: [ResultElement("type", type)]))
        case .srCheck(let sr):
            let report = try driver.srCheck(sr: sr)
            let document = ResultDocument.render(report.element)
            if !report.problems.isEmpty {
                try Diagnostics.writeStandardOutput(document)
                throw StorageError.io("sr_check found \(report.problems.count) problem(s) in SR \(sr); see the XML on stdout")
            }
            return document
        case .srGC(let sr):
            try driver.srGC(sr: sr)
        case .vdiCreate(let sr, let vdi, let size):
            try driver.vdiCreate(sr: sr, vdi: vdi, size: size)
        case .vdiDelete(let sr, let vdi):
            try driver.vdiDelete(sr: sr, vdi: vdi)
        case .vdiAttach(let sr, let vdi):
            return ResultDocument.render(try driver.vdiAttach(sr: sr, vdi: vdi).element)
        case .vdiDetach(let sr, let vdi):
            try driver.vdiDetach(sr: sr, vdi: vdi)
        case .vdiClone(let sr, let source, let destination):
            try driver.vdiClone(sr: sr, source: source, destination: destination)
        case .vdiSnapshot(let sr, let source, let destination):
            try driver.vdiSnapshot(sr: sr, source: source, destination: destination)
        case .vdiResize(let sr, let vdi, let size):
            try driver.vdiResize(sr: sr, vdi: vdi, size: size)
        case .vdiLock(let sr, let vdi, let force, let user):
            try driver.vdiLock(sr: sr, vdi: vdi, force: force, user: user)
        case .vdiUnlock(let sr, let vdi, let user):
            try driver.vdiUnlock(sr: sr, vdi: vdi, user: user)
        case .srProbe:
            // Answered by perform(_:verb:as:configuration:host:) before any driver is made.
            throw StorageError.invalid("sr_probe names no SR and is answered from the dconf alone, not by an SR's driver")
        case .vdiExport(let sr, let vdi, let format):
            try driver.vdiExport(sr: sr, vdi: vdi, format: format, to: .standardOutput)
        case .vdiImport(let sr, let vdi, let format, let size):
            try driver.vdiImport(sr: sr, vdi: vdi, format: format, size: size, from: .standardInput)
        }
        return nil
    }

    static func takeLocks(for request: Request, verb: Verb, host: HostEnvironment) throws(StorageError) -> [HostLock] {
        // sr_gc serialises itself (VHDRepository+GC.swift: the SR's gc lock, then each merge's
        // VDIs): holding the SR lock through a long merge would stall every other verb.
        if verb == .srGC { return [] }
        // sr_probe names no SR; the substrates it reads take their own locks (an iSCSI target's).
        guard let sr = request.sr else { return [] }
        let directory = "\(host.lockDirectory)/\(sr)"
        var locks = [
            try HostLock.acquire(
                "\(directory)/sr", mode: verb.isSRWide ? .exclusive : .shared,
                timeout: host.lockTimeout)
        ]
        for vdi in Set(request.vdis).sorted() {
            locks.append(try HostLock.acquire("\(directory)/\(vdi)", mode: .exclusive, timeout: host.lockTimeout))
        }
        return locks
    }
}
