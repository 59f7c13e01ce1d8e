/// Cylinder/head/sector geometry computed with the algorithm of the VHD specification.
/// It never describes more than the disk's size (capped at 65535/16/255 for very large disks).
public struct VHDGeometry: Equatable, Sendable {
    public var cylinders: UInt16
    public var heads: UInt8
    public var sectorsPerTrack: UInt8

    /// The number of sectors the geometry describes.
    public var sectorCount: UInt64 { UInt64(cylinders) * UInt64(heads) * UInt64(sectorsPerTrack) }

    public init(cylinders: UInt16, heads: UInt8, sectorsPerTrack: UInt8) {
        self.cylinders = cylinders
        self.heads = heads
        self.sectorsPerTrack = sectorsPerTrack
    }

    public init(size: UInt64) {
        var totalSectors = size / 512
        let maximum: UInt64 = 65535 * 16 * 255
        if totalSectors > maximum { totalSectors = maximum }
        var sectorsPerTrack: UInt64
        var heads: UInt64
        var cylinderTimesHeads: UInt64
        if totalSectors >= 65535 * 16 * 63 {
            sectorsPerTrack = 255
            heads = 16
            cylinderTimesHeads = totalSectors / sectorsPerTrack
        } else {
            sectorsPerTrack = 17
            cylinderTimesHeads = totalSectors / sectorsPerTrack
            heads = max(4, (cylinderTimesHeads + 1023) / 1024)
            if cylinderTimesHeads >= heads * 1024 || heads > 16 {
                sectorsPerTrack = 31
                heads = 16
                cylinderTimesHeads = totalSectors / sectorsPerTrack
            }
            if cylinderTimesHeads >= heads * 1024 {
                sectorsPerTrack = 63
                heads = 16
                cylinderTimesHeads = totalSectors / sectorsPerTrack
            }
        }
        self.init(cylinders: UInt16(cylinderTimesHeads / heads), heads: UInt8(heads), sectorsPerTrack: UInt8(sectorsPerTrack))
    }
}
