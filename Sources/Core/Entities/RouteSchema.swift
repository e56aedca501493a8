/// `routes` (`kong/db/schema/entities/routes.lua`, `routes_subschemas.lua`). The subschema key is
/// `protocols`: http/https, grpc/grpcs and the stream protocols each add their own rules.
public enum RouteSchema {
    public static let schema: EntitySchema = {
        var schema = EntitySchema(name: "routes", singularName: "route", record: RecordSchema([
            "id": Typedefs.uuid,
            "created_at": Typedefs.autoTimestamp,
            "updated_at": Typedefs.autoTimestamp,
            "name": Typedefs.utf8Name,
            "protocols": Field.set(of: Typedefs.protocol).required().lenMin(1).default(["http", "https"])
                .mutuallyExclusiveSubsets([["http", "https"], ["tcp", "tls", "udp"], ["tls_passthrough"], ["grpc", "grpcs"]]),
            "methods": Field.set(of: Field.string.match("^%u+$")),
            "hosts": Field.array(of: wildcardHost),
            "paths": Field.array(of: routerPath),
            "headers": Field.map(
                keys: Typedefs.headerName.matchNone([(pattern: "^[Hh][Oo][Ss][Tt]$",
                    err: "cannot contain 'host' header, which must be specified in the 'hosts' attribute")]),
                values: Field.array(of: Field.string)),
            "https_redirect_status_code": Field.integer.required().default(426).oneOf([426, 301, 302, 307, 308]),
            "regex_priority": Field.integer.default(0),
            "strip_path": Field.boolean.required().default(true),
            "path_handling": Field.string.default("v0").oneOf(["v0", "v1"]),
            "preserve_host": Field.boolean.required().default(false),
            "request_buffering": Field.boolean.required().default(true),
            "response_buffering": Field.boolean.required().default(true),
            "snis": Field.set(of: sni),
            "sources": Field.set(of: endpoint),
            "destinations": Field.set(of: endpoint),
            "tags": Typedefs.tags,
            "service": Field.foreign("services"),
        ], checks: [
            .custom(CustomEntityCheck(name: "snis_require_tls_protocol", fieldSources: ["protocols", "snis"]) { route in
                let protocols = route["protocols"]?.arrayValue?.compactMap(\.stringValue) ?? []
                let tlsProtocols: Set<String> = ["grpcs", "https", "tls", "tls_passthrough"]
                guard protocols.allSatisfy({ !tlsProtocols.contains($0) }),
                      let snis = route["snis"]?.arrayValue, !snis.isEmpty else { return nil }
                return EntityCheckFailure(
                    "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'",
                    fieldErrors: ["snis": "length must be 0"])
            }),
        ]))
        schema.endpointKey = "name"
        schema.subschemaKey = "protocols"
        schema.subschemaRequired = false
        let http = Subschema(fields: [
            ("sources", Field.set(of: endpoint).eq(.null).err("cannot set 'sources' when 'protocols' is 'http' or 'https'")),
            ("destinations", Field.set(of: endpoint).eq(.null)
                .err("cannot set 'destinations' when 'protocols' is 'http' or 'https'")),
        ], checks: [
            .conditionalAtLeastOneOf(ConditionalAtLeastOneOf(
                ifField: "protocols", ifMatch: Field.rule.contains("https"),
                thenAtLeastOneOf: ["methods", "hosts", "headers", "paths", "snis"],
                thenErr: "must set one of %s when 'protocols' is 'https'",
                elseMatch: Field.rule.contains("http"),
                elseThenAtLeastOneOf: ["methods", "hosts", "headers", "paths"],
                elseThenErr: "must set one of %s when 'protocols' is 'http'")),
        ])
        let grpc = Subschema(fields: [
            ("strip_path", Field.boolean.required().default(false).ne(true)
                .err("cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs'")),
            ("methods", Field.set(of: Field.string).eq(.null).err("cannot set 'methods' when 'protocols' is 'grpc' or 'grpcs'")),
            ("sources", Field.set(of: endpoint).eq(.null).err("cannot set 'sources' when 'protocols' is 'grpc' or 'grpcs'")),
            ("destinations", Field.set(of: endpoint).eq(.null)
                .err("cannot set 'destinations' when 'protocols' is 'grpc' or 'grpcs'")),
        ], checks: [
            .conditionalAtLeastOneOf(ConditionalAtLeastOneOf(
                ifField: "protocols", ifMatch: Field.rule.contains("grpcs"),
                thenAtLeastOneOf: ["hosts", "headers", "paths", "snis"],
                thenErr: "must set one of %s when 'protocols' is 'grpcs'",
                elseMatch: Field.rule.contains("grpc"),
                elseThenAtLeastOneOf: ["hosts", "headers", "paths"],
                elseThenErr: "must set one of %s when 'protocols' is 'grpc'")),
        ])
        let streamErr = "when 'protocols' is 'tcp', 'tls', 'tls_passthrough' or 'udp'"
        let stream = Subschema(fields: [
            ("methods", Field.set(of: Field.string).eq(.null).err("cannot set 'methods' \(streamErr)")),
            ("hosts", Field.array(of: Field.string).eq(.null).err("cannot set 'hosts' \(streamErr)")),
            ("paths", Field.array(of: Field.string).eq(.null).err("cannot set 'paths' \(streamErr)")),
            ("headers", Field.map(keys: Field.string, values: Field.array(of: Field.string)).eq(.null)
                .err("cannot set 'headers' \(streamErr)")),
        ], checks: [
            streamNeeds(protocols: ["tcp", "tls", "udp"], oneOf: ["sources", "destinations", "snis"],
                        err: "must set one of %s when 'protocols' is 'tcp', 'tls' or 'udp'"),
            streamNeeds(protocols: ["tls_passthrough"], oneOf: ["snis"],
                        err: "must set snis when 'protocols' is 'tls_passthrough'"),
        ])
        for p in ["http", "https"] { schema.subschemas[p] = http }
        for p in ["grpc", "grpcs"] { schema.subschemas[p] = grpc }
        for p in ["tcp", "tls", "udp", "tls_passthrough"] { schema.subschemas[p] = stream }
        return schema
    }()

    /// Kong's `conditional_at_least_one_of` with an `elements` match: applies when every
    /// protocol is one of `protocols`.
    private static func streamNeeds(protocols: Set<String>, oneOf fields: [String], err: String) -> EntityCheck {
        .custom(CustomEntityCheck(name: "stream_route_requirements", fieldSources: ["protocols"],
                                  runWithMissingFields: true) { route in
            let given = route["protocols"]?.arrayValue?.compactMap(\.stringValue) ?? []
            guard !given.isEmpty, given.allSatisfy(protocols.contains) else { return nil }
            if fields.contains(where: { route[$0]?.isNonEmpty ?? false }) { return nil }
            return EntityCheckFailure(err.replacingOccurrences(of: "%s", with: SchemaMessages.quoted(fields)))
        })
    }

    /// `hosts` entries: host names or IPs with an optional port and at most one wildcard label.
    static var wildcardHost: Field {
        Field.string.custom("validate_wildcard_host") { value in
            guard var host = value.stringValue else { return nil }
            let stars = host.filter { $0 == "*" }.count
            if stars > 0 {
                if stars > 1 { return "invalid wildcard: must have at most one wildcard" }
                let bare = host.split(separator: ":").first.map(String.init) ?? host
                if !(bare.hasPrefix("*.") || bare.hasSuffix(".*")) {
                    return "invalid wildcard: must be placed at leftmost or rightmost label"
                }
                host = host.replacingOccurrences(of: "*", with: "wildcard")
            }
            if case .failure(.invalid) = HostSyntax.parse(host) { return "invalid value: \(host)" }
            return nil
        }
    }

    /// `snis` entries: names only (no IP, no port), one wildcard as first or last character.
    static var sni: Field {
        Field.string.custom("validate_sni") { value in
            guard var host = value.stringValue else { return nil }
            let stars = host.filter { $0 == "*" }.count
            if stars > 0 {
                if stars > 1 { return "only one wildcard must be specified" }
                if !(host.hasPrefix("*") || host.hasSuffix("*")) { return "wildcard must be leftmost or rightmost character" }
                host = host.replacingOccurrences(of: "*", with: "wildcard")
            }
            switch HostSyntax.parse(host) {
            case .failure(.invalid): return "invalid value: \(host)"
            case .failure(.invalidPort): return "must not have a port"
            case .success(let parsed):
                if parsed.kind != .name { return "must not be an IP" }
                if parsed.port != nil { return "must not have a port" }
                return nil
            }
        }
    }

    /// `paths` entries: a normalised plain path, or `~` followed by a regex.
    static var routerPath: Field {
        Field.string
            .matchAny(["^/", "^~/"], err: "should start with: / (fixed path) or ~/ (regex path)")
            .matchNone([(pattern: "//", err: "must not have empty segments")])
            .custom("validate_path_with_regexes") { value in
                guard let path = value.stringValue else { return nil }
                if path.hasPrefix("~") {
                    let regex = String(path.dropFirst())
                    if let error = RegexSyntax.compileError(regex) {
                        return "invalid regex: '\(regex)' (PCRE returned: \(error))"
                    }
                    return nil
                }
                if let problem = PathSyntax.validate(path) { return problem.message }
                let normalized = PathSyntax.normalize(path)
                if normalized != path { return "non-normalized path, consider use '\(normalized)' instead" }
                return nil
            }
    }

    /// `sources` / `destinations` entries.
    static var endpoint: Field {
        Field.record(["ip": Typedefs.ipOrCIDR, "port": Typedefs.port],
                     checks: [.atLeastOneOf(["ip", "port"])])
    }
}
