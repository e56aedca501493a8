/// The commented template `silverback config init` writes.
enum ExampleConfig {
    static let text = """
    # ------------------------------------------------------------------------------
    # Silverback declarative configuration (Kong's `_format_version: "3.0"` format).
    # Validate it with: silverback config parse kong.yml
    # ------------------------------------------------------------------------------
    _format_version: "3.0"

    # Services are the upstream APIs; routes decide which requests reach them.
    services:
    - name: openai-chat
      url: https://api.openai.com/v1/chat/completions
      routes:
      - name: chat
        paths: ["/chat"]
        methods: [POST]
      plugins:
      # ai-proxy turns OpenAI-format requests into the configured provider's calls.
      - name: ai-proxy
        config:
          route_type: llm/v1/chat
          auth:
            header_name: Authorization
            # A whole value may also be a vault reference, e.g. "{vault://env/openai-key}".
            header_value: "Bearer sk-change-me"
          model:
            provider: openai
            name: gpt-4o-mini
          logging:
            log_statistics: true

    # Consumers identify callers; key-auth credentials authenticate them.
    consumers:
    - username: alice
      keyauth_credentials:
      - key: change-me

    # Global plugins apply to every route.
    plugins:
    - name: key-auth
      config:
        key_names: [apikey]

    """
}
