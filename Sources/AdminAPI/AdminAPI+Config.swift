import Core
import Foundation

/// `/config` in DB-less mode (spec §4.2): export as YAML, replace the whole configuration.
extension AdminAPI {
    static let databaseOnlyMessage = "this endpoint is only available when Kong is configured to not use a database"

    func exportConfig() -> AdminResponse {
        guard settings.database == .off else { return .message(400, Self.databaseOnlyMessage) }
        return .json(200, ["config": .string(currentConfig.exportYAML(entityOrder: registry.orderedEntityNames))])
    }

    func postConfig(_ request: AdminRequest) async -> AdminResponse {
        guard settings.database == .off else { return .message(400, Self.databaseOnlyMessage) }
        let flatten = ["true", "1", "on", "yes"].contains(request.queryValue("flatten_errors")?.lowercased() ?? "")

        // The three body forms, in Kong's order: an object with `_format_version`; a `config`
        // field holding text; the raw body as text.
        let document: JSONValue
        var text: String?
        let mediaType = request.header("content-type")?.lowercased() ?? ""
        let accepted = ["", "application/json", "application/x-www-form-urlencoded", "multipart/form-data",
                        "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"]
        let bareType = mediaType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        if !request.body.isEmpty && !accepted.contains(bareType) { return AdminResponse(status: 415) }
        var fields: [String: JSONValue] = [:]
        if mediaType.hasPrefix("application/json") || mediaType.hasPrefix("application/x-www-form-urlencoded")
            || mediaType.hasPrefix("multipart/form-data") {
            do {
                fields = try RequestBodyDecoder.decode(request, schema: nil)
            } catch .invalidJSON {
                // Kong's Admin API refuses a JSON body that does not parse before any endpoint runs.
                return bodyFailure(.invalidJSON)
            } catch {
                fields = [:]
            }
        }
        if fields["_format_version"] != nil {
            document = .object(fields)
        } else {
            if let field = fields["config"]?.stringValue {
                text = field
            } else if !request.body.isEmpty {
                text = String(decoding: request.body, as: UTF8.self)
            }
            guard let text else { return .message(400, "expected a declarative configuration") }
            if request.queryValue("check_hash") == "1", DeclarativeConfig.hash(of: text) == configurationHash {
                return AdminResponse(status: 304)
            }
            do {
                document = try DocumentReader.read(unnamed: text)
            } catch {
                return .error(KongError(code: .invalidDeclarativeConfiguration,
                                        message: "declarative config is invalid: {error=\"\(error.message)\"}",
                                        fields: ["error": .string(error.message)]))
            }
            guard case .object = document else {
                let message = "failed parsing declarative configuration: expected an object"
                return .error(KongError(code: .invalidDeclarativeConfiguration,
                                        message: "declarative config is invalid: {error=\"\(message)\"}",
                                        fields: ["error": .string(message)]))
            }
        }

        let claimed = reserveLoading()
        guard claimed else {
            return AdminResponse(status: 429, headers: [("Content-Type", "application/json; charset=utf-8"), ("Retry-After", "1")],
                                 body: Array(#"{"message":"Currently loading previous configuration"}"#.utf8))
        }
        defer { finishLoading() }

        let config: DeclarativeConfig
        switch loader.load(document) {
        case .failure(let error):
            return .error(flatten ? error.flattenedKongError : error.kongError)
        case .success(let loaded):
            config = loaded
        }
        do {
            try gateway.apply(config)
        } catch {
            // Valid by the schemas but not runnable here (a plugin this build cannot run as
            // configured): refused like any invalid file, saying why; the running one stays.
            return .error(KongError(code: .invalidDeclarativeConfiguration,
                                    message: "declarative config is invalid: {error=\"\(error.message)\"}",
                                    fields: ["error": .string(error.message)]))
        }
        let persistedText = text ?? document.serialized()
        configurationApplied(config, text: persistedText)
        persist(persistedText)

        var body: [String: JSONValue] = [:]
        for entity in registry.orderedEntityNames {
            let rows = config.rows(entity)
            guard !rows.isEmpty else { continue }
            var keyed: [String: JSONValue] = [:]
            for (position, row) in rows.enumerated() {
                keyed[row["id"]?.stringValue ?? String(position)] = output(row)
            }
            body[entity] = .object(keyed)
        }
        return .json(201, .object(body))
    }

    private func reserveLoading() -> Bool {
        stateBox.withLockedValue { state in
            guard !state.loading else { return false }
            state.loading = true
            return true
        }
    }

    private func finishLoading() { stateBox.withLockedValue { $0.loading = false } }

    /// Records the configuration now running (also after a SIGHUP reload), for `/status` and
    /// `check_hash`.
    public func configurationApplied(_ config: DeclarativeConfig, text: String) {
        let hash = config.configurationHash(text: text)
        stateBox.withLockedValue { $0.hash = hash }
    }

    /// Keeps the accepted configuration under `prefix` (written atomically: a crash never leaves
    /// half a file), so a restart without `declarative_config` comes back with it.
    private func persist(_ text: String) {
        guard let persistencePath else { return }
        let url = URL(fileURLWithPath: persistencePath)
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? Data(text.utf8).write(to: url, options: .atomic)
    }
}
