import FuzzSupport

@testable import SMCore

/// The intent-record parser on arbitrary bytes (what a torn or damaged journal file holds):
/// a record or nil, never a trap; a parsed record written out again parses to itself.
runFuzzer { input in
    guard let record = IntentRecord(bytes: input) else { return }
    for key in record.fields.keys { _ = record.uuid(key) }
    let again = IntentRecord(bytes: record.bytes)
    fuzzCheck(again == record, "record does not survive a round trip: \(record) -> \(String(describing: again))")
}
