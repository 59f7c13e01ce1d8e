import FuzzSupport

@testable import SMCore

/// One VHD file built from the input (layout: `FuzzFiles`), then everything SMCore does with a
/// single file: the checker, open, the BAT, bitmaps, reads, parent resolution, and the writes
/// (a sector, the hidden flag, a resize, tail repair).
///
/// Properties: nothing traps; a file the checker finds sound stays sound after the writes
/// succeed, and reads back what was written.
runFuzzer { input in
    guard let path = FuzzFiles.write(input, names: ["disk.vhd"]).first else { return }
    let soundBefore = VHDChecker.problems(ofFile: path).isEmpty
    if let image = try? VHDImage.open(path) {
        _ = try? image.allocationTable()
        _ = try? image.bitmap(ofBlock: 0)
        _ = try? image.read(at: 0, count: Int(min(image.size, 64 << 10)))
        if image.size >= 4096 { _ = try? image.read(at: image.size - 4096, count: 4096) }
        _ = try? VHDChain.resolveParent(of: image)
    }
    guard let image = try? VHDImage.open(path, writable: true) else { return }
    image.durable = false
    let sector = [UInt8](repeating: 0xA5, count: 512)
    // A sector in the first block and one in the middle of the disk, both sector aligned, so
    // that a differencing disk opened alone can take them (no read of the parent).
    let middle = image.size / 2 / 512 * 512
    var written = true
    do throws(StorageError) {
        if image.size >= 512 { try image.write(at: 0, bytes: sector) }
        if image.size >= 1024 { try image.write(at: middle, bytes: sector) }
        try image.setHidden(true)
        if image.size <= UInt64(1) << 40 { try image.resize(to: image.size + (4 << 20)) }
        try image.repairTail()
    } catch {
        written = false
    }
    guard soundBefore, written else { return }
    let problems = VHDChecker.problems(ofFile: path)
    fuzzCheck(problems.isEmpty, "a sound file is unsound after writing it: \(problems)")
    if !image.isDifferencing, image.size >= 1024 {
        fuzzCheck((try? image.read(at: 0, count: 512)) == sector, "sector 0 does not read back")
        fuzzCheck((try? image.read(at: middle, count: 512)) == sector, "sector at \(middle) does not read back")
    }
}
