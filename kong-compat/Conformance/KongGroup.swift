import Foundation
import Testing

/// Per-group pass/fail tally of the conformance cases: a trait that prints one line per group
/// when the group is done,
///
///     kong-compat unit-requests: 16 passed, 0 failed
///
/// and names the failed cases after it. Failures themselves stay ordinary test issues: every
/// `#expect`/`#require` keeps failing its test, with the group and case appended to its message.
///
/// Use: `@Test(.kongGroup("unit-requests"), arguments: …)` on a test function (each argument is a
/// case; a function without arguments is one case), or `@Suite(.kongGroup("…"))` to count every
/// case of every test in the suite as one group. A parameterized test names its case with
/// `KongGroup.name(_:)` (else the case is called after the test function).
///
/// A case fails when an issue that is a failure is recorded while it runs, or when it throws. The
/// line is printed once the whole group has run (cases may run in parallel); a group cut short
/// by a filter counts what ran.
struct KongGroup: TestTrait, SuiteTrait, TestScoping {
    let group: String

    /// Suite use: the test functions inherit the trait, so their cases are counted.
    var isRecursive: Bool { true }

    /// A scope around the whole group and one around each case: the default gives only the
    /// latter for test functions, and only the former for non-recursive suite traits.
    func scopeProvider(for test: Test, testCase: Test.Case?) -> KongGroup? { self }

    func provideScope(for test: Test, testCase: Test.Case?,
                      performing function: @Sendable () async throws -> Void) async throws {
        if let testCase {
            try await runCase(test, testCase, function)
        } else if KongGroupTally.current?.group == group {
            // A test function inside a suite that carries the group: the suite counts.
            try await function()
        } else {
            let tally = KongGroupTally(group: group)
            defer { print(tally.summary) }
            try await KongGroupTally.$current.withValue(tally) { try await function() }
        }
    }

    private func runCase(_ test: Test, _ testCase: Test.Case,
                         _ function: @Sendable () async throws -> Void) async throws {
        let record = KongCaseRecord(name: test.displayName ?? test.name)
        let group = group
        let marking = IssueHandlingTrait.compactMapIssues { issue in
            guard issue.isFailure else { return issue }
            record.fail()
            var named = issue
            named.comments.append("kong-compat \(group): case \(record.name) failed")
            return named
        }
        do {
            try await KongCaseRecord.$current.withValue(record) {
                try await marking.provideScope(for: test, testCase: testCase, performing: function)
            }
        } catch {
            record.fail()
            KongGroupTally.current?.add(record)
            throw error
        }
        KongGroupTally.current?.add(record)
    }

    /// Names the running case in the group's messages (a parameterized test's argument).
    static func name(_ value: some CustomTestStringConvertible) {
        KongCaseRecord.current?.setName(value.testDescription)
    }

    static func name(_ value: String) {
        KongCaseRecord.current?.setName(value)
    }
}

extension Trait where Self == KongGroup {
    /// Counts the cases of this test (or suite) as the conformance group `group`.
    static func kongGroup(_ group: String) -> KongGroup { KongGroup(group: group) }
}

/// The counts of one group run; cases report from whatever task they run on.
final class KongGroupTally: @unchecked Sendable {
    @TaskLocal static var current: KongGroupTally?

    let group: String
    private let lock = NSLock()
    private var passed = 0
    private var failed: [String] = []

    init(group: String) { self.group = group }

    func add(_ record: KongCaseRecord) {
        let (name, ok) = (record.name, !record.failed)
        lock.lock()
        defer { lock.unlock() }
        if ok { passed += 1 } else { failed.append(name) }
    }

    var summary: String {
        lock.lock()
        defer { lock.unlock() }
        var line = "kong-compat \(group): \(passed) passed, \(failed.count) failed"
        if !failed.isEmpty { line += " (" + failed.sorted().joined(separator: "; ") + ")" }
        return line
    }
}

/// The state of one running case.
final class KongCaseRecord: @unchecked Sendable {
    @TaskLocal static var current: KongCaseRecord?

    private let lock = NSLock()
    private var _name: String
    private var _failed = false

    init(name: String) { _name = name }

    var name: String { lock.lock(); defer { lock.unlock() }; return _name }
    var failed: Bool { lock.lock(); defer { lock.unlock() }; return _failed }

    func setName(_ name: String) { lock.lock(); _name = name; lock.unlock() }
    func fail() { lock.lock(); _failed = true; lock.unlock() }
}
