import Foundation
import Testing

@testable import SMCore

/// The reference model: what every listed VDI must read, byte for byte, through random
/// sequences of writes (the engine's API, in-process, any alignment), snapshots, clones,
/// deletes and coalescing (the built FileSR). After every step the listing equals the model's
/// VDIs, each reads exactly its model, and sr_check is clean.
///
/// `SM_COW_STEPS` sets the length (default 40), `SM_COW_SEED` replays a sequence.
@Suite(.serialized) struct FileSRSnapshotModelTests {
    @Test(.timeLimit(.minutes(5))) func randomSequences() throws {
        let environment = ProcessInfo.processInfo.environment
        let steps = Int(environment["SM_COW_STEPS"] ?? "") ?? 40
        let seed = UInt64(environment["SM_COW_SEED"] ?? "") ?? UInt64.random(in: 0...UInt64(UInt32.max))
        var random = SeededGenerator(seed: seed)
        let sr = try CopyOnWriteSR("sm-model")
        let repository = VHDRepository(sr: try #require(CanonicalUUID(sr.sr)), root: sr.root, host: HostEnvironment())
        var model: [String: [UInt8]] = [:]
        var readOnly: Set<String> = []
        for size in [4 << 20, 6 << 20] {
            model[try sr.create(size: UInt64(size))] = [UInt8](repeating: 0, count: size)
        }
        var history: [String] = []
        for step in 0..<steps {
            let listed = model.keys.sorted()
            let tree = try repository.tree()
            let choice = Int.random(in: 0..<100, using: &random)
            var action = ""
            if choice < 40 || listed.isEmpty {
                let writable = listed.filter { !readOnly.contains($0) }
                guard let vdi = writable.randomElement(using: &random) else {
                    let size = 4 << 20
                    let vdi = try sr.create(size: UInt64(size))
                    model[vdi] = [UInt8](repeating: 0, count: size)
                    history.append("create \(vdi)")
                    continue
                }
                let size = model[vdi]?.count ?? 0
                let aligned = Bool.random(using: &random)
                var length = Int.random(in: 1...300_000, using: &random)
                var offset = Int.random(in: 0..<size - 1, using: &random)
                if aligned {
                    offset = offset / 4096 * 4096
                    length = (length + 4095) / 4096 * 4096
                }
                length = min(length, size - offset)
                let bytes = pattern(length, seed: random.next())
                try sr.write(vdi, at: UInt64(offset), bytes)
                model[vdi]?.replaceSubrange(offset..<offset + length, with: bytes)
                action = "write \(vdi) \(offset)+\(length)"
            } else if choice < 55 || choice < 68 {
                let isSnapshot = choice < 55
                let source = listed[Int.random(in: 0..<listed.count, using: &random)]
                let destination = newUUID()
                let before = Set(try sr.listed().keys)
                let result = try sr.run(isSnapshot ? "vdi_snapshot" : "vdi_clone", sr.sr, source, destination)
                let chainFull = tree.chain(from: try #require(CanonicalUUID(source))).count >= VHDChain.maximumLength
                let hasChildren = !tree.childrenOf(try #require(CanonicalUUID(source))).isEmpty
                action = "\(isSnapshot ? "snapshot" : "clone") \(source) -> \(destination): \(result.status)"
                if chainFull || (isSnapshot && hasChildren) {
                    #expect(result.status == 1, "step \(step) seed \(seed): \(action) \(result)")
                } else {
                    #expect(result.status == 0, "step \(step) seed \(seed): \(action) \(result)")
                    model[destination] = model[source]
                    if isSnapshot { readOnly.insert(destination) }
                    if !isSnapshot && !hasChildren {
                        let base = try #require(Set(try sr.listed().keys).subtracting(before).subtracting([destination]).first)
                        model[base] = model[source]
                        readOnly.insert(base)
                    }
                }
            } else if choice < 88 {
                let vdi = listed[Int.random(in: 0..<listed.count, using: &random)]
                try sr.expectOK("vdi_delete", sr.sr, vdi)
                model[vdi] = nil
                action = "delete \(vdi)"
            } else {
                try sr.expectOK("sr_gc", sr.sr)
                action = "sr_gc"
            }
            history.append(action)
            let context = "seed \(seed), step \(step): \(history.suffix(4).joined(separator: "; "))"
            let nowListed = try sr.listed()
            #expect(Set(nowListed.keys) == Set(model.keys), "\(context)")
            for (vdi, expected) in model where nowListed[vdi] != nil {
                let actual = try sr.read(vdi)
                #expect(actual == expected, "\(context): VDI \(vdi) differs from its model")
                if actual != expected { return }
            }
            try sr.expectClean()
        }
        try sr.expectOK("sr_gc", sr.sr)
        for (vdi, expected) in model { #expect(try sr.read(vdi) == expected, "seed \(seed) after the final sr_gc") }
        try sr.expectClean()
    }
}
