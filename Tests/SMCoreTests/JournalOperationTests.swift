import Foundation
import Testing

@testable import SMCore

/// The typed operations of the journal and the fault points read and name exactly what the
/// strings did: records written before the types existed still name their operation, and every
/// point has one name, under its operation, listed in the docs.
@Suite struct JournalOperationTests {
    /// A record as earlier builds wrote it (`operation=<name>` first) reads back as its operation,
    /// for every operation, and writes the same bytes again.
    @Test(arguments: IntentRecord.Operation.allCases) func earlierRecordsReadBack(operation: IntentRecord.Operation) throws {
        let bytes = Array("sm-intent 1\noperation=\(operation.rawValue)\nhost=h\nvdi=0b1a4f54-c7d8-4e9f-8a1b-2c3d4e5f6a7b\n".utf8)
        let record = try #require(IntentRecord(bytes: bytes))
        #expect(record.operation == operation)
        #expect(record.fields == ["host": "h", "vdi": "0b1a4f54-c7d8-4e9f-8a1b-2c3d4e5f6a7b"])
        #expect(record.bytes == bytes)
    }

    /// The on-disk names are the ones earlier builds wrote.
    @Test func operationNamesAreTheWireNames() {
        #expect(IntentRecord.Operation.allCases.map(\.rawValue) == ["snapshot", "clone", "clone-child", "delete", "coalesce", "resize"])
    }

    /// A record naming an operation this build does not know is still read (recovery leaves it
    /// for sr_check), keeps its name, and writes back unchanged.
    @Test func unknownOperationIsKept() throws {
        let bytes = Array("sm-intent 1\noperation=frobnicate\nvdi=x\n".utf8)
        let record = try #require(IntentRecord(bytes: bytes))
        #expect(record.operation == nil)
        #expect(record.operationName == "frobnicate")
        #expect(record.bytes == bytes)
    }

    /// Every fault point's name is unique, starts with its operation's name, and is listed in
    /// Docs/copy-on-write.md.
    @Test func faultPointNames() throws {
        #expect(Set(FaultPoint.all).count == FaultPoint.all.count)
        for operation in FaultPoint.operations {
            let prefixes = Set(operation.names.map { $0.split(separator: ".").first.map(String.init) ?? "" })
            #expect(prefixes.count == 1, "\(operation): \(prefixes)")
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let documentation = try String(contentsOf: root.appendingPathComponent("Docs/copy-on-write.md"), encoding: .utf8)
        for name in FaultPoint.all { #expect(documentation.contains("`\(name)`"), "\(name) is not in Docs/copy-on-write.md") }
    }
}
