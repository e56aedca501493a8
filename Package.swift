// swift-tools-version:6.0
import PackageDescription

// Dependencies are the machine's local package copies (see README). Keep this list lean:
// CI builds everything from scratch on 2 cores.
let package = Package(
    name: "Silverback",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "silverback", targets: ["silverback"]),
        .library(name: "Core", targets: ["Core"]),
        .library(name: "Plugins", targets: ["Plugins"]),
        .library(name: "AdminAPI", targets: ["AdminAPI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", exact: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", exact: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client", exact: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", exact: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        // DB mode's embedded store, on the system SQLite (libsqlite3-dev).
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        // Tests only: a self-signed certificate for the HTTPS-upstream tests.
        .package(url: "https://github.com/apple/swift-certificates", exact: "1.21.1"),
        // gzip both ways for ai-proxy (zlib, which the Swift toolchain already requires).
        .package(url: "https://github.com/adam-fowler/compress-nio", exact: "1.5.0"),
    ],
    targets: [
        // Schema engine, entities, declarative loader, settings, snapshot. Never imports Plugins/AdminAPI.
        .target(
            name: "Core",
            dependencies: [
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        // Debian's Lua 5.1 library (liblua5.1-0-dev), for the sandbox below.
        .systemLibrary(name: "CLua", path: "Sources/CLua", pkgConfig: "lua5.1",
                       providers: [.apt(["liblua5.1-0-dev"])]),
        // ai-rate-limiting-advanced's `requestPrompt` functions run here: a fresh, limited Lua state
        // per call, written in C so Lua's error longjmps never cross Swift frames.
        .target(name: "LuaSandbox", dependencies: ["CLua"], path: "Sources/LuaSandbox"),
        // Bundled plugins: each declares its schema (and later its phase handlers). Imports Core only.
        .target(
            name: "Plugins",
            dependencies: [
                "Core", "LuaSandbox",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                // The Redis client of ai-rate-limiting-advanced's `redis` strategy.
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                // Side calls (token endpoints, transformer LLM calls): never on the plain-proxy path.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                // Certificate verification settings of those calls.
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                // SigV4 HMAC/SHA-256 and RS256 JWTs for cloud identities.
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]
        ),
        // Kong-compatible Admin API. Knows plugins only through their registered schemas.
        .target(
            name: "AdminAPI",
            dependencies: [
                "Core",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                // The Admin server's logger follows the node's `log_level`.
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "silverback",
            dependencies: [
                "Core", "Plugins", "AdminAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                // Kong's self-signed default certificate for `ssl` listeners without `ssl_cert`.
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Helpers the test targets share (a seeded generator).
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "CoreTests", dependencies: [
            "Core", "TestSupport", .product(name: "NIOCore", package: "swift-nio"),
            // Loop-turn behaviour (LoopFlushBatch) observed on an event loop the test turns itself.
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        .testTarget(
            name: "PluginsTests",
            dependencies: [
                "Core", "Plugins", "TestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                // The Redis client tests' mock server.
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "AdminAPITests",
            dependencies: [
                "Core", "AdminAPI",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        // Kong's ai-proxy fixtures (read from ../shared/kong-fixtures) against our LLM drivers.
        .testTarget(name: "KongCompat", dependencies: ["Core", "Plugins", "TestSupport"], path: "kong-compat/Conformance"),
        // Runs the real `silverback` binary against the files in kong-compat/.
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "silverback", "Core", "Plugins",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ],
            // Run by OpenAISDKTests with Python, from its place in the sources.
            exclude: ["openai_sdk_test.py"]
        ),
    ]
)
