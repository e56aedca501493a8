import ArgumentParser
import Core
import Foundation
import Plugins

@main
struct Silverback: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "silverback",
        abstract: "A Kong-compatible AI gateway.",
        subcommands: [Start.self, Config.self, Version.self]
    )
}

/// Options shared by commands that read node settings.
struct NodeOptions: ParsableArguments {
    @Option(name: [.customShort("c"), .customLong("conf")], help: "Configuration file (kong.conf format).")
    var conf: String?

    func settings() throws -> Settings {
        var text: String?
        if let conf {
            do { text = try String(contentsOfFile: conf, encoding: .utf8) } catch {
                throw CLIError("could not read configuration file \(conf): \(error.localizedDescription)")
            }
        }
        do {
            return try Settings.load(confText: text, confPath: conf, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw CLIError(error.message)
        }
    }

    /// Declarative files describe DB-less nodes: their plugin checks for DB-less mode apply.
    func loader(for settings: Settings) throws -> DeclarativeLoader {
        do {
            let plugins = try BundledPlugins.definitions(for: settings.plugins)
            return DeclarativeLoader(registry: EntityRegistry(plugins: plugins, dbless: true))
        } catch {
            throw CLIError("\(error)")
        }
    }
}

extension NodeOptions {
    /// Loads a declarative file; a failure becomes `<failure>\n<Kong's error text>`.
    func loadDeclarative(path: String, settings: Settings, failure: String) throws -> DeclarativeConfig {
        do {
            return try loader(for: settings).load(path: path)
        } catch let error as DeclarativeLoadError {
            switch error {
            case .unreadable(let message): throw CLIError("\(failure)\n\(message)")
            case .invalid(let invalid): throw CLIError("\(failure)\n\(invalid.text)")
            }
        }
    }
}

/// A failure reported as Kong's CLI does: `Error: <message>` on stderr, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start the gateway.")
    @OptionGroup var node: NodeOptions

    func run() throws {
        let settings = try node.settings()
        if settings.database == .off, let path = settings.declarativeConfig {
            _ = try node.loadDeclarative(path: path, settings: settings,
                                         failure: "error parsing declarative config file \(path):")
            print("declarative config \(path) is valid")
        }
        throw CLIError("proxy not implemented yet: this build validates settings and configuration only")
    }
}

struct Config: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Work with declarative configuration files.",
        subcommands: [Parse.self, Init.self]
    )

    struct Parse: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Parse and validate a declarative configuration file.")
        @Argument(help: "The declarative configuration file (.yml, .yaml or .json).") var file: String
        @OptionGroup var node: NodeOptions

        func run() throws {
            _ = try node.loadDeclarative(path: file, settings: try node.settings(), failure: "Failed parsing:")
            print("parse successful")
        }
    }

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a commented example declarative configuration.")
        @Argument(help: "Where to write it.") var file: String = "kong.yml"

        func run() throws {
            if FileManager.default.fileExists(atPath: file) {
                throw CLIError("\(file) already exists; refusing to overwrite it")
            }
            do { try ExampleConfig.text.write(toFile: file, atomically: true, encoding: .utf8) } catch {
                throw CLIError("could not write \(file): \(error.localizedDescription)")
            }
            print("Created \(file)")
        }
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() {
        print("Silverback \(SilverbackVersion.version) (Kong \(SilverbackVersion.kongCompatibility) compatible)")
    }
}

enum SilverbackVersion {
    static let version = "0.1.0"
    static let kongCompatibility = "3.10.0"
}
