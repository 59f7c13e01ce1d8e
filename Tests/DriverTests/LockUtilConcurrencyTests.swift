import Foundation
import Testing

/// Races, hosts and time: real processes, real UTS namespaces, real mtimes.
@Suite(.serialized) struct LockUtilConcurrencyTests {
    /// 20 processes, released together by a shared flock barrier, race for one writer lock:
    /// exactly one wins in each of 50 rounds, the others see -4 (or -7), and only the winner's
    /// lock file is left (no mutex, no link). Five rounds, on five files, run at once (100
    /// processes), which is more contention for the directory and keeps the test short.
    @Test(.timeLimit(.minutes(2))) func twentyProcessesFiftyRounds() throws {
        let work = try LockScratch()
        let rounds = 50
        let racers = 20
        let parallel = 5
        let script = """
            set -u
            dir="$1"; bin="$2"; rounds="$3"; racers="$4"; parallel="$5"
            for batch in $(seq 1 $((rounds / parallel))); do
                exec 9>"$dir/barrier"
                flock -x 9
                for t in $(seq 1 "$parallel"); do
                    for i in $(seq 1 "$racers"); do
                        flock -s "$dir/barrier" "$bin" lock "$dir/disk-$t.vhd" w 0 "racer-$i" 30 >"$dir/out.$t.$i" 2>/dev/null 9>&- &
                    done
                done
                sleep 0.2
                flock -u 9
                exec 9>&-
                wait
                for t in $(seq 1 "$parallel"); do
                    line="round $batch.$t:"
                    for i in $(seq 1 "$racers"); do
                        result=$(cat "$dir/out.$t.$i")
                        line="$line $result,"
                        if [ "$result" = "0 30" ]; then "$bin" unlock "$dir/disk-$t.vhd" w "racer-$i" >/dev/null 2>&1; fi
                    done
                    echo "$line left:$(cd "$dir" && ls | grep -c "^disk-$t.vhd.xenlk" || true)"
                done
            done
            """
        let start = Date()
        let result = try Product.runProgram(
            "/bin/bash",
            [
                "-c", script, "race", work.directory, Product.path("lock-util"),
                String(rounds), String(racers), String(parallel)
            ])
        let seconds = Date().timeIntervalSince(start)
        #expect(result.status == 0, "\(result)")
        let lines = result.standardOutput.split(separator: "\n")
        #expect(lines.count == rounds, "\(result)")
        var winners: [Int] = []
        var contended = 0
        var mutexBusy = 0
        for line in lines {
            let statuses = line.split(separator: ":")[1].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("left") }
            winners.append(statuses.filter { $0 == "0 30" }.count)
            contended += statuses.filter { $0 == "-4 -1" }.count
            mutexBusy += statuses.filter { $0 == "-7 -1" }.count
            #expect(statuses.count == racers && statuses.allSatisfy { ["0 30", "-4 -1", "-7 -1"].contains($0) }, "\(line)")
            #expect(line.hasSuffix("left:0"), "the winner's unlock left protocol files behind: \(line)")
        }
        #expect(winners.allSatisfy { $0 == 1 }, "winners per round: \(winners)")
        print(
            "race: \(rounds) rounds x \(racers) processes in \(Int(seconds)) s; winners per round \(Set(winners)); "
                + "losers -4: \(contended), -7: \(mutexBusy)")
    }

    /// Two hosts (UTS namespaces) exclude each other even with the same id; a forced lock takes
    /// over in about one lease, holding the mutex meanwhile (a third host waits, then sees -4); the
    /// cut-off holder then finds the lock taken; forcing what one already holds does not wait.
    @Test(.timeLimit(.minutes(1))) func twoHostsAndForcedTakeover() async throws {
        let work = try LockScratch()
        let file = work.file
        expectLine(try LockUtil.run(["lock", file, "w", "0", "agent", "2"], host: "hosta"), "0 2")
        let refused = try LockUtil.run(["lock", file, "w", "0", "agent", "2"], host: "hostb")
        expectLine(refused, "-4 -1")
        #expect(refused.standardError.contains("writer 'agent' on host hosta"), "\(refused)")
        expectLine(try LockUtil.run(["lock", file, "r", "0", "agent", "2"], host: "hostb"), "-4 -1")
        expectLine(try LockUtil.run(["unlock", file, "w", "agent"], host: "hostb"), "-13")
        #expect(work.lockNames() == ["disk.vhd.xenlk.hosta.agent.fw"])

        let forcedStart = Date()
        let forced = Task.detached { try LockUtil.timed(["lock", file, "w", "1", "agent", "2"], host: "hostb") }
        // hostb's lock file appears before its lease wait, which it spends holding the mutex.
        while !work.lockNames().contains("disk.vhd.xenlk.hostb.agent.fw") && Date().timeIntervalSince(forcedStart) < 10 {
            try await Task.sleep(for: .milliseconds(20))
        }
        let third = try LockUtil.timed(["lock", file, "w", "0", "other", "2"], host: "hostc")
        let thirdEnd = Date().timeIntervalSince(forcedStart)
        let (takeover, seconds) = try await forced.value
        expectLine(takeover, "0 2")
        #expect(takeover.standardError.contains("took over from 'agent' on host hosta"), "\(takeover)")
        #expect(seconds >= 2.0 && seconds < 5.0, "a takeover with a 2 s lease took \(seconds) s")
        expectLine(third.result, "-4 -1")
        #expect(thirdEnd >= 2.0, "hostc could only decide after the takeover released the mutex (\(thirdEnd) s)")
        #expect(work.lockNames() == ["disk.vhd.xenlk.hostb.agent.fw"])

        expectLine(try LockUtil.run(["lock", file, "w", "0", "agent", "2"], host: "hosta"), "-4 -1")
        let again = try LockUtil.timed(["lock", file, "w", "1", "agent", "2"], host: "hostb")
        expectLine(again.result, "1 2")
        #expect(again.seconds < 1.8, "nothing to take over, so no 2 s wait (\(again.seconds) s)")
        expectLine(try LockUtil.run(["unlock", file, "w", "agent"], host: "hostb"), "0")
        #expect(work.lockNames().isEmpty)
        print(
            "takeover with a 2 s lease: \(String(format: "%.2f", seconds)) s; third host waited \(String(format: "%.2f", third.seconds)) s for the mutex"
        )
    }

    /// A mutex left by a killed process is removed once it is more than 30 s old on the server's
    /// clock (aged with `touch -d`), and not before: younger, it makes lock answer -7 after the
    /// retries, with or without force, and stays exactly as it was.
    @Test(.timeLimit(.minutes(1))) func staleMutexRecovery() async throws {
        let leftOver = "disk.vhd.xenlk.deadhost.killed.xw"
        func prepare(age seconds: Int) throws -> LockScratch {
            let work = try LockScratch()
            try work.write("disk.vhd.xenlk", leftOver)
            try Product.shell("touch -d '\(seconds) seconds ago' '\(work.directory)/disk.vhd.xenlk'")
            return work
        }
        let young = try prepare(age: 15)
        let youngForced = try prepare(age: 15)
        let old = try prepare(age: 35)
        let oldForced = try prepare(age: 35)
        let youngFile = young.file
        let youngForcedFile = youngForced.file
        let oldFile = old.file
        let oldForcedFile = oldForced.file
        async let youngResult = Task.detached { try LockUtil.timed(["lock", youngFile, "w", "0", "a", "30"]) }.value
        async let youngForcedResult = Task.detached { try LockUtil.timed(["lock", youngForcedFile, "w", "1", "a", "30"]) }.value
        async let oldResult = Task.detached { try LockUtil.timed(["lock", oldFile, "w", "0", "a", "30"]) }.value
        async let oldForcedResult = Task.detached { try LockUtil.timed(["lock", oldForcedFile, "w", "1", "a", "30"]) }.value

        for (work, outcome) in [(young, try await youngResult), (youngForced, try await youngForcedResult)] {
            expectLine(outcome.result, "-7 -1")
            #expect(
                outcome.result.standardError.contains("stayed taken through 16 retries (taken for \(leftOver))"),
                "\(outcome.result)")
            #expect(outcome.seconds > 0.5, "16 retries with random sleeps take a while (\(outcome.seconds) s)")
            #expect(work.contents("disk.vhd.xenlk") == leftOver, "a mutex younger than 30 s must survive")
            #expect(work.lockNames() == ["disk.vhd.xenlk"])
        }
        let recovered = try await oldResult
        let recoveredForced = try await oldForcedResult
        for (work, outcome) in [(old, recovered), (oldForced, recoveredForced)] {
            expectLine(outcome.result, "0 30")
            #expect(work.lockNames() == ["disk.vhd.xenlk.\(hostName).a.fw"])
        }
        #expect(recoveredForced.seconds < 5.0, "force removes a stale mutex at once and takes nothing over (no 30 s wait)")
        print(
            "stale mutex: -7 after \(String(format: "%.1f", try await youngResult.seconds)) s of retries; "
                + "recovered after \(String(format: "%.1f", recovered.seconds)) s (forced: \(String(format: "%.2f", recoveredForced.seconds)) s)"
        )
    }
}
