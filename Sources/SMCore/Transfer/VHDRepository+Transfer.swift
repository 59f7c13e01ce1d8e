import SystemPackage

/// vdi_export and vdi_import on file-based SRs (FileSR, EXTSR, NFSSR, EXToISCSISR): Docs/export.md.
extension VHDRepository {
    /// Writes the VDI's data, its chain flattened, to `output`. The dispatcher holds the VDI's
    /// host lock and `VHDRepositoryDriver` its shared claim for the whole export, so no verb of
    /// any host changes it (nor the collector merges it) meanwhile; ancestors that the collector
    /// merges among themselves keep reading the same bytes (Docs/copy-on-write.md). A VDI that
    /// something may be writing is refused (EBUSY): attached on this host, or locked by
    /// vdi_lock (the agent's sign, on any host, that a VM uses it). Export a snapshot instead.
    public func export(_ vdi: CanonicalUUID, format: TransferFormat, to output: FileDescriptor) throws(StorageError) {
        try requireAttached()
        guard fileExists(vdi), !isHidden(vdi) else { throw .noSuchVDI(vdi.string, sr: sr.string) }
        guard !attachState.isVDIAttached(vdi) else { throw .vdiAttached(vdi.string) }
        try requireUnlocked(vdi)
        let chain: VHDChain
        do { chain = try VHDChain.open(vdiPath(vdi), confinedTo: root) } catch {
            throw error.reworded("VDI \(vdi) cannot be exported: \(error.message); run sr_check")
        }
        try VDIExport.write(VHDChainSource(chain), as: format, to: output)
    }

    /// Makes the new VDI from `input`. Built as vdi_create builds one, under the claimed
    /// temporary name `.<VDI>.vhd.new` that sr_scan does not list, synced, then linked into
    /// place: a failure removes it (nothing is left), a crash leaves a temporary whose writer is
    /// gone, which the next sr_scan or vdi_create/vdi_import of that UUID removes. ENOSPC
    /// before anything is written when the SR's free space cannot hold what may come (a VHD
    /// stream's blocks of data; a raw stream's whole size), and on the way if it runs out.
    public func importVDI(_ vdi: CanonicalUUID, format: TransferFormat, size declared: UInt64, from input: FileDescriptor)
        throws(StorageError)
    {
        try requireAttached()
        guard !fileExists(vdi) else { throw .vdiExists(vdi.string, sr: sr.string) }
        let plan = try VDIImport.begin(format: format, declaredSize: declared, from: input)
        let virtualSize = Self.roundedSize(plan.size)
        let blocks = UInt64(plan.dataBlocks ?? TransferBlock.count(plan.size))
        let needed =
            UInt64(VHDFooter.size * 2 + VHDDynamicHeader.size) + VHDImage.reservedEntries(for: virtualSize) * 4
            + blocks * VDIExport.VHDLayout.stride
        let fileSystem = try Syscall.fileSystemStatus(root)
        let available = UInt64(fileSystem.f_bavail) * UInt64(fileSystem.f_frsize)
        guard available >= needed + 64 * 1024 else {
            let what =
                format == .raw ? "a raw stream of \(plan.size) bytes (any block may hold data)" : "the VHD's \(blocks) blocks of data"
            throw .noSpace("SR \(sr) has \(available) bytes free; VDI \(vdi) from \(what) needs up to \(needed)")
        }
        let temporary = temporaryPath(vdi)
        ClaimedTemporary.removeIfAbandoned(temporary)
        let claimed = try ClaimedTemporary.create(temporary)
        let image: VHDImage
        do throws(StorageError) {
            image = try VHDImage.create(at: temporary, size: virtualSize, uniqueID: CanonicalUUID.random().bytes, claimed: claimed)
            let sink = try VHDFileSink(image)
            try plan.copy(into: sink)
            try sink.finish()
            FaultPoint.Import.written.reach()
        } catch {
            try? Syscall.unlinkIfPresent(temporary)
            throw error
        }
        try publish(temporary, as: vdi, holding: image)
    }
}

extension VHDRepositoryDriver {
    public func vdiExport(sr: CanonicalUUID, vdi: CanonicalUUID, format: TransferFormat, to output: FileDescriptor) throws {
        try withReadyRepository(sr, holding: [vdi]) { try $0.export(vdi, format: format, to: output) }
    }

    public func vdiImport(
        sr: CanonicalUUID, vdi: CanonicalUUID, format: TransferFormat, size: UInt64, from input: FileDescriptor
    ) throws {
        try withReadyRepository(sr, holding: [vdi]) { try $0.importVDI(vdi, format: format, size: size, from: input) }
    }
}
