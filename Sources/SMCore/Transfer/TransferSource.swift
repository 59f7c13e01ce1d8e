import SystemPackage

/// The unit of vdi_export and vdi_import: the VHD block (2 MiB), so that a VHD's BAT says
/// directly which units hold data.
public enum TransferBlock {
    public static let size = VHDImage.blockSize

    /// How many blocks a disk of `size` bytes has (the last one may be short).
    public static func count(_ size: UInt64) -> Int { Int((size + Self.size - 1) / Self.size) }

    /// The bytes of `block` inside a disk of `size` bytes.
    public static func length(_ block: Int, of size: UInt64) -> Int {
        Int(min(Self.size, size - UInt64(block) * Self.size))
    }

    /// True when every byte is zero (eight at a time).
    public static func isZero(_ buffer: UnsafeRawBufferPointer) -> Bool {
        let words = buffer.count / 8
        if words > 0 {
            let wide = UnsafeRawBufferPointer(rebasing: buffer[0..<words * 8]).bindMemory(to: UInt64.self)
            for word in wide where word != 0 { return false }
        }
        for byte in buffer[(words * 8)...] where byte != 0 { return false }
        return true
    }
}

/// What vdi_export reads: a VDI's guest bytes, and which blocks can hold any.
public protocol TransferSource {
    var size: UInt64 { get }
    /// Per block: false when it reads as zeros without being read (unallocated).
    func allocation() throws(StorageError) -> [Bool]
    /// True when `allocation` comes from metadata (a VHD's BATs); false for a raw device, whose
    /// every block is "allocated" and whose zero blocks are only found by reading them.
    var knowsAllocation: Bool { get }
    /// The guest bytes from `offset` on (`buffer.count` of them, all inside the disk).
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(StorageError)
}

extension TransferSource {
    /// The guest bytes of `block` (`buffer.count` is the block's length).
    public func read(block: Int, into buffer: UnsafeMutableRawBufferPointer) throws(StorageError) {
        try read(at: UInt64(block) * TransferBlock.size, into: buffer)
    }
}

/// A VDI of a file-based SR: its VHD chain, read flattened (leaf first, unallocated sectors
/// from the parents, zeros past a smaller parent's end).
public struct VHDChainSource: TransferSource {
    public let chain: VHDChain

    public init(_ chain: VHDChain) { self.chain = chain }

    public var size: UInt64 { chain.size }
    public var knowsAllocation: Bool { true }

    /// A block is allocated when any file of the chain has it in its BAT.
    public func allocation() throws(StorageError) -> [Bool] {
        var allocated = [Bool](repeating: false, count: TransferBlock.count(size))
        for image in chain.images {
            let table = try image.allocationTable()
            for block in 0..<min(allocated.count, table.count, image.blockCount) where table[block] != VHDImage.unallocated {
                allocated[block] = true
            }
        }
        return allocated
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(StorageError) {
        try chain.read(at: offset, into: buffer)
    }
}

/// A raw disk: a block device (a logical volume) or a regular file, every block read.
public struct RawDiskSource: TransferSource {
    public let descriptor: FileDescriptor
    public let path: String
    public let size: UInt64

    public init(descriptor: FileDescriptor, path: String, size: UInt64) {
        self.descriptor = descriptor
        self.path = path
        self.size = size
    }

    public var knowsAllocation: Bool { false }

    public func allocation() throws(StorageError) -> [Bool] { [Bool](repeating: true, count: TransferBlock.count(size)) }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(StorageError) {
        let got = try descriptor.read(into: buffer, at: offset, path: path)
        guard got == buffer.count else {
            throw .io("\(path): read \(got) of \(buffer.count) bytes at \(offset): the device is shorter than \(size) bytes")
        }
    }
}

extension Array where Element == UInt8 {
    /// `withUnsafeBytes` for a body that throws `StorageError` (the standard one rethrows `any Error`).
    func withTransferBytes<T>(_ body: (UnsafeRawBufferPointer) throws(StorageError) -> T) throws(StorageError) -> T {
        let outcome: Result<T, StorageError> = withUnsafeBytes { buffer in
            do throws(StorageError) { return .success(try body(buffer)) } catch { return .failure(error) }
        }
        return try outcome.get()
    }
}
