import Foundation
import Testing

// Fixture completeness: every Kong fixture of the kinds below is either exercised by one of the
// case lists of this target or named in `FixtureCoverage.excluded` with the reason. A fixture
// added to ../shared/kong-fixtures (or a case dropped from a list) makes this fail until someone
// decides what it is for.

enum FixtureCoverage {
    /// Files deliberately not exercised by a case list, with why.
    static let excluded: [String: String] = {
        var excluded: [String: String] = [:]
        // Upstream error bodies Kong's integration mocks serve with status 400/401/500: a non-200
        // answer is passed through without conversion (spec §2.7, MANIFEST §5), so there is
        // nothing for the response conversion to do with them.
        let passedThrough = "served with a non-200 status by Kong's mock: passed through unconverted (spec §2.7)"
        for file in [
            "anthropic/llm-v1-chat/responses/unauthorized.json",
            "anthropic/llm-v1-completions/responses/unauthorized.json",
            "cohere/llm-v1-chat/responses/bad_request.json",
            "cohere/llm-v1-chat/responses/internal_server_error.html",
            "cohere/llm-v1-chat/responses/unauthorized.json",
            "cohere/llm-v1-completions/responses/bad_request.json",
            "huggingface/llm-v1-completions/responses/unauthorized.json",
            "openai/llm-v1-chat/responses/bad_request.json",
            "openai/llm-v1-chat/responses/unauthorized.json",
            "openai/llm-v1-completions/responses/bad_request.json",
            "openai/llm-v1-completions/responses/unauthorized.json",
        ] {
            excluded[file] = passedThrough
        }
        return excluded
    }()

    static let chunkFormats = "unit/streaming-chunk-formats/"

    /// Every regular file under `KongFixtures.root`, as a path relative to it (hidden files left out).
    static func allFiles() throws -> [String] {
        let root = KongFixtures.root.path
        return try FileManager.default.subpathsOfDirectory(atPath: root).filter { relative in
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: root + "/" + relative, isDirectory: &isDirectory)
            return exists && !isDirectory.boolValue && !relative.split(separator: "/").contains { $0.hasPrefix(".") }
        }.sorted()
    }

    /// The listings the coverage rule applies to, by glob.
    static func listings() throws -> [(glob: String, files: [String])] {
        let files = try allFiles()
        return [
            ("*/llm-v1-*/responses/*", files.filter { path in
                let parts = path.split(separator: "/")
                return parts.count == 4 && parts[1].hasPrefix("llm-v1-") && parts[2] == "responses"
            }),
            ("unit/real-stream-frames/**", files.filter { $0.hasPrefix("unit/real-stream-frames/") }),
            ("unit/streaming-chunk-formats/*", files.filter { $0.hasPrefix(chunkFormats) }),
            ("native/**", files.filter { $0.hasPrefix("native/") }),
        ]
    }

    /// The files the case lists read directly.
    static var filesInCaseLists: Set<String> {
        Set(ResponseFixtureCase.all.map(\.file))
            .union(realStreamFrameCases.map { "unit/real-stream-frames/\($0.file)" })
            .union(rechunkFixtures.flatMap(\.files))
            .union(nativeFixtureFiles)
    }

    /// Whether a case list exercises `file`. The chunk-format test reads each directory of
    /// `chunkFormatDirectories` as a whole (inputs and expected output).
    static func isUsed(_ file: String) -> Bool {
        if filesInCaseLists.contains(file) { return true }
        guard file.hasPrefix(chunkFormats) else { return false }
        let directory = file.dropFirst(chunkFormats.count).split(separator: "/").first.map(String.init)
        return directory.map(StreamFixtureTests.chunkFormatDirectories.contains) ?? false
    }
}

@Suite("Kong fixtures: every file is exercised or excluded with a reason",
       .enabled(if: KongFixtures.available, KongFixtures.missingReason))
struct FixtureCoverageTests {
    @Test func everyListingHasFiles() throws {
        let listings = try FixtureCoverage.listings()
        #expect(listings.count == 4)
        for listing in listings {
            #expect(!listing.files.isEmpty, "nothing matches \(listing.glob) under \(KongFixtures.root.path)")
        }
    }

    @Test func everyFileIsUsedOrExcluded() throws {
        for listing in try FixtureCoverage.listings() {
            for file in listing.files {
                let used = FixtureCoverage.isUsed(file)
                let reason = FixtureCoverage.excluded[file]
                #expect(used || reason != nil, "\(file) (\(listing.glob)) is in no case list and not excluded")
                #expect(!(used && reason != nil), "\(file) is both used and excluded (\(reason ?? ""))")
            }
        }
    }

    /// The exclusions stay honest: each names a listed file and gives a reason.
    @Test func exclusionsNameListedFilesWithAReason() throws {
        let listed = Set(try FixtureCoverage.listings().flatMap(\.files))
        for (file, reason) in FixtureCoverage.excluded.sorted(by: { $0.key < $1.key }) {
            #expect(listed.contains(file), "excluded \(file) is not a listed fixture (renamed or removed?)")
            #expect(!reason.trimmingCharacters(in: .whitespaces).isEmpty, "\(file) is excluded without a reason")
        }
    }

    /// MANIFEST §4: the four native cases read their inputs and targets, and the three native
    /// requests no Kong spec loads are converted too, so no native file is excluded.
    @Test func everyNativeFixtureIsExercised() throws {
        let native = try FixtureCoverage.allFiles().filter { $0.hasPrefix("native/") }
        #expect(native.count == 7)
        for file in native {
            #expect(nativeFixtureFiles.contains(file), "\(file) is in no native case list")
            #expect(FixtureCoverage.excluded[file] == nil, "\(file)")
        }
        #expect(Set(NativeFixtureCase.all.flatMap { [$0.input, $0.expected] }).count == 4)
    }

    /// What the case lists name exists, and each chunk-format directory is a real one.
    @Test func caseListsNameExistingFixtures() throws {
        let all = Set(try FixtureCoverage.allFiles())
        for file in FixtureCoverage.filesInCaseLists.sorted() {
            #expect(all.contains(file), "a case list reads \(file), which does not exist")
        }
        let directories = Set(all.filter { $0.hasPrefix(FixtureCoverage.chunkFormats) }.compactMap {
            $0.dropFirst(FixtureCoverage.chunkFormats.count).split(separator: "/").first.map(String.init)
        })
        #expect(directories == Set(StreamFixtureTests.chunkFormatDirectories))
    }

    /// Every chunk-format input also goes through the re-chunking fuzz.
    @Test func everyChunkFormatInputIsFuzzed() throws {
        let inputs = try FixtureCoverage.allFiles().filter {
            $0.hasPrefix(FixtureCoverage.chunkFormats) && $0.split(separator: "/").last?.hasPrefix("input") == true
        }
        #expect(!inputs.isEmpty)
        let fuzzed = Set(rechunkFixtures.flatMap(\.files))
        for input in inputs {
            #expect(fuzzed.contains(input), "\(input) is not in rechunkFixtures")
        }
    }
}
