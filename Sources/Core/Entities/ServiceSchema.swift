/// `services` (`kong/db/schema/entities/services.lua`), with the `url` shorthand.
public enum ServiceSchema {
    public static let schema: EntitySchema = {
        func nullUnlessTLS(_ field: String) -> EntityCheck {
            .conditional(ifField: "protocol", ifMatch: Field.rule.notOneOf(["https", "tls"].map(JSONValue.string)),
                         thenField: field, thenMatch: Field.rule.eq(.null))
        }
        var schema = EntitySchema(name: "services", singularName: "service", record: RecordSchema([
            "id": Typedefs.uuid,
            "created_at": Typedefs.autoTimestamp,
            "updated_at": Typedefs.autoTimestamp,
            "name": Typedefs.utf8Name,
            "retries": Field.integer.default(5).between(0, 32767),
            "protocol": Typedefs.protocol.required().default("http"),
            "host": Typedefs.host.required(),
            "port": Typedefs.port.required().default(80),
            "path": Typedefs.path,
            "connect_timeout": Typedefs.timeout.default(60000).between(1, 2_147_483_646),
            "write_timeout": Typedefs.timeout.default(60000).between(1, 2_147_483_646),
            "read_timeout": Typedefs.timeout.default(60000).between(1, 2_147_483_646),
            "tags": Typedefs.tags,
            "client_certificate": Field.foreign("certificates"),
            "tls_verify": Field.boolean,
            "tls_verify_depth": Field.integer.between(0, 64),
            "ca_certificates": Field.array(of: Field.string.uuid()),
            "enabled": Field.boolean.required().default(true),
        ], checks: [
            .conditional(ifField: "protocol",
                         ifMatch: Field.rule.oneOf(["tcp", "tls", "udp", "grpc", "grpcs"]),
                         thenField: "path", thenMatch: Field.rule.eq(.null)),
            nullUnlessTLS("client_certificate"),
            nullUnlessTLS("tls_verify"),
            nullUnlessTLS("tls_verify_depth"),
            nullUnlessTLS("ca_certificates"),
        ]))
        schema.endpointKey = "name"
        schema.shorthands = [Shorthand(name: "url", field: Field.string, expand: expandURL)]
        return schema
    }()

    /// `url` → protocol, host, port, path (overriding explicitly given fields, as Kong does).
    static func expandURL(_ value: JSONValue) -> Result<[String: JSONValue], ShorthandError> {
        guard let text = value.stringValue else { return .failure(ShorthandError("expected a string")) }
        let parts = URLParts(text)
        var out: [String: JSONValue] = [:]
        let explicitPort = parts.port.flatMap { Int($0) }
        let scheme = parts.scheme ?? (explicitPort == 443 ? "https" : "http")
        out["protocol"] = .string(scheme)
        out["host"] = parts.host.map(JSONValue.string) ?? .null
        if let explicitPort {
            out["port"] = .number(Double(explicitPort))
        } else if let rawPort = parts.port {
            out["port"] = .string(rawPort)  // reported by the port field: `expected an integer`
        } else {
            out["port"] = .number(scheme == "https" ? 443 : 80)
        }
        out["path"] = parts.path.map(JSONValue.string) ?? .null
        return .success(out)
    }
}
