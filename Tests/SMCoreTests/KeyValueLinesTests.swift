import Testing

@testable import SMCore

/// The one `key=value` reader splits where each of its callers needs it to.
@Suite struct KeyValueLinesTests {
    /// Untrimmed (records, attributes): keys and values kept byte for byte, a value may hold `=`,
    /// a line without `=` has no value, a "\r" before a line end stays in its value, empty lines
    /// are skipped.
    @Test func untrimmed() {
        let text = KeyValueLines(Array("sm-intent 1\na=b=c\n\n x = y \nv=1\r\nw=\n".utf8))
        #expect(
            text.lines == [
                .init(number: 1, key: "sm-intent 1", value: nil), .init(number: 2, key: "a", value: "b=c"),
                .init(number: 4, key: " x ", value: " y "), .init(number: 5, key: "v", value: "1\r"),
                .init(number: 6, key: "w", value: "")
            ])
        #expect(text.firstLineWithoutValue?.number == 1)
        #expect(text.dictionary == ["a": "b=c", " x ": " y ", "v": "1\r", "w": ""])
    }

    /// Trimmed with comments (sm.conf): blanks around keys and values go, comment and blank lines
    /// are skipped, line numbers count every line, a later key wins.
    @Test func trimmedWithComments() {
        let text = KeyValueLines(
            Array("# settings\n\n  run_dir = /run/sm \r\n\tlock_timeout=5\nbad line\nrun_dir=/x\n".utf8),
            trimming: true, comments: true)
        #expect(text.firstLineWithoutValue == .init(number: 5, key: "bad line", value: nil))
        #expect(text.dictionary == ["run_dir": "/x", "lock_timeout": "5"])
    }

    /// An iscsiadm node record's authentication reads back through it: blanks trimmed, a password
    /// may hold `=`, an empty value counts as absent, other keys and comments are ignored.
    @Test func nodeRecordAuthentication() {
        let record = """
            # BEGIN RECORD 2.1.8
            node.name = iqn.x:y
            node.session.auth.authmethod = CHAP
            node.session.auth.username = u
            node.session.auth.password = s3=cret\r
            node.session.auth.username_in =
            # END RECORD
            """
        #expect(ISCSISession.authentication(inRecord: record) == .chap(.init(user: "u", password: "s3=cret")))
        #expect(ISCSISession.authentication(inRecord: "node.session.auth.authmethod = None\n") == .none)
        #expect(ISCSISession.authentication(inRecord: "node.session.auth.authmethod = CHAP\nnode.session.auth.username =\n") == .none)
    }
}
