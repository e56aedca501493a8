import Testing
@testable import Core
import NIOCore

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

struct RequestBodyFieldsTests {
    @Test func multipartPartsIncludingEmptyOnes() throws {
        let body = "--b\r\nContent-Disposition: form-data; name=\"apikey\"\r\n\r\n\r\n"
            + "--b\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nhi\r\n--b--\r\n"
        let fields = try #require(RequestBodyFields(contentType: "multipart/form-data; boundary=b", body: ByteBuffer(string: body)))
        #expect(fields.values["apikey"] == [""])
        #expect(fields.values["prompt"] == ["hi"])
        #expect(fields.names == ["apikey", "prompt"])
        #expect(String(buffer: fields.removing("apikey")).contains("name=\"prompt\""))
        #expect(!String(buffer: fields.removing("apikey")).contains("apikey"))
    }

    @Test func formAndJSON() throws {
        let form = try #require(RequestBodyFields(contentType: "application/x-www-form-urlencoded",
                                                  body: ByteBuffer(string: "a=1&b=x+y&a=2")))
        #expect(form.values == ["a": ["1", "2"], "b": ["x y"]])
        #expect(String(buffer: form.removing("a")) == "b=x+y")
        let json = try #require(RequestBodyFields(contentType: "application/json", body: ByteBuffer(string: #"{"k":["a","b"],"n":1}"#)))
        #expect(json.values == ["k": ["a", "b"], "n": ["1"]])
        #expect(RequestBodyFields(contentType: "application/json", body: ByteBuffer(string: "[1]")) == nil)
        #expect(RequestBodyFields(contentType: "text/plain", body: ByteBuffer(string: "a=1")) == nil)
    }
}
