import Core

/// key-auth (`kong/plugins/key-auth/schema.lua`, spec kong-core §2.7): API-key authentication.
/// Cannot be scoped to a consumer; brings the `keyauth_credentials` entity.
public enum KeyAuthPlugin {
    public static let definition: PluginDefinition = PluginDefinition(
        name: "key-auth",
        priority: 1250,
        version: KongVersion.number,
        config: RecordSchema([
            "key_names": Field.array(of: Typedefs.headerName).required().default(["apikey"]),
            "hide_credentials": Field.boolean.required().default(false),
            // Consumer id or username used when authentication fails.
            "anonymous": Field.string,
            "key_in_header": Field.boolean.required().default(true),
            "key_in_query": Field.boolean.required().default(true),
            "key_in_body": Field.boolean.required().default(false),
            "run_on_preflight": Field.boolean.required().default(true),
            // Used in `WWW-Authenticate`.
            "realm": Field.string.required(false),
        ]),
        protocols: Typedefs.protocolsHTTP,
        forbiddenScopes: [.consumer],
        entities: [KeyAuthCredentialSchema.schema]
    )
}
