import Testing
@testable import Core

struct ConfigSnapshotTests {
    @Test func typedViewOfAValidatedConfiguration() throws {
        let registry = EntityRegistry(plugins: [PluginDefinition(
            name: "key-auth", priority: 1250, version: "test",
            config: RecordSchema(["key_names": Field.array(of: Field.string).default(["apikey"])]),
            forbiddenScopes: [.consumer], entities: [KeyAuthCredentialSchema.schema])])
        let config = try DeclarativeLoader(registry: registry).load(text: """
        _format_version: "3.0"
        services:
        - name: svc
          url: https://upstream.example:8443/base
          routes:
          - name: r
            paths: ["/a"]
            headers: {X-Team: [blue]}
            plugins:
            - name: key-auth
        consumers:
        - username: alice
          keyauth_credentials:
          - key: k1
            ttl: 60
        consumer_groups:
        - name: gold
          consumers: [{username: alice}]
        """, format: .yaml)
        let snapshot = ConfigSnapshot(config)
        let service = try #require(snapshot.services.first)
        #expect(service.protocol == "https" && service.host == "upstream.example" && service.port == 8443)
        #expect(service.path == "/base")
        let route = try #require(snapshot.routes.first)
        #expect(route.serviceID == service.id)
        #expect(route.headers == ["x-team": ["blue"]])
        #expect(route.stripPath)
        let plugin = try #require(snapshot.plugins.first)
        #expect(plugin.routeID == route.id && plugin.serviceID == nil)
        #expect(plugin.config == ["key_names": ["apikey"]])
        let credential = try #require(snapshot.keyAuthCredentials.first)
        #expect(credential.consumerID == snapshot.consumers.first?.id)
        #expect(credential.ttl == 60)
        #expect(credential.isValid(at: credential.createdAt + 59))
        #expect(!credential.isValid(at: credential.createdAt + 60))
        #expect(snapshot.memberships == [ConsumerGroupMembership(consumerGroupID: snapshot.consumerGroups[0].id,
                                                                 consumerID: credential.consumerID)])
    }
}
