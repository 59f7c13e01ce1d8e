import FuzzSupport

@testable import SMCore

/// The footer, dynamic header and parent-locator decoders on arbitrary bytes, without a file.
///
/// Input: byte 0 holds the fix-up flags of `FuzzFiles` (bit 0 footer checksum, bit 1 header
/// checksum); then 512 footer bytes, 1024 header bytes, and locator data (the rest).
/// Properties: parsing never traps; what parses writes out to bytes that parse to the same
/// value; the header's parent name survives `setParentName`; the checker's footer rules never trap.
runFuzzer { input in
    guard let flags = input.first else { return }
    var footerBytes = Array(input.dropFirst().prefix(VHDFooter.size))
    var headerBytes = Array(input.dropFirst(1 + VHDFooter.size).prefix(VHDDynamicHeader.size))
    let locatorBytes = Array(input.dropFirst(1 + VHDFooter.size + VHDDynamicHeader.size))
    if flags & FuzzFiles.checksumFooter != 0, footerBytes.count == VHDFooter.size {
        footerBytes.setBigEndian32(footerBytes.vhdChecksum(excludingFieldAt: VHDFooter.checksumOffset), at: VHDFooter.checksumOffset)
    }
    if flags & FuzzFiles.checksumHeader != 0, headerBytes.count == VHDDynamicHeader.size {
        headerBytes.setBigEndian32(
            headerBytes.vhdChecksum(excludingFieldAt: VHDDynamicHeader.checksumOffset),
            at: VHDDynamicHeader.checksumOffset)
    }
    if let footer = try? VHDFooter(bytes: footerBytes) {
        fuzzCheck((try? VHDFooter(bytes: footer.bytes)) == footer, "footer does not survive a round trip")
        _ = VHDChecker.footerProblems(footer, raw: footerBytes, now: 0)
        _ = VHDGeometry(size: footer.currentSize)
    }
    if var header = try? VHDDynamicHeader(bytes: headerBytes) {
        fuzzCheck((try? VHDDynamicHeader(bytes: header.bytes)) == header, "dynamic header does not survive a round trip")
        let name = header.parentName
        header.setParentName(name)
        fuzzCheck(header.parentName == name, "parent name '\(name)' does not survive setParentName")
        for locator in header.parentLocators { _ = locator.dataSpaceInBytes }
    }
    for code in [VHDParentLocator.macX, VHDParentLocator.w2ku, VHDParentLocator.w2ru, 0] {
        _ = VHDChain.decodeLocator(platformCode: code, locatorBytes)
    }
}
