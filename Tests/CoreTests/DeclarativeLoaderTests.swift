import Testing
@testable import Core
import NIOHTTP1

/// The declarative loader against spec §5 (format, nesting, ids, references, error forms).
struct DeclarativeLoaderTests {
    let loader = DeclarativeLoader(registry: EntityRegistry(plugins: []))

    func load(_ yaml: String) -> Result<DeclarativeConfig, DeclarativeError> {
        do {
            return .success(try loader.load(text: yaml, format: .yaml))
        } catch .invalid(let error) {
            return .failure(error)
        } catch {
            Issue.record("unreadable: \(error)")
            return .failure(DeclarativeError(tree: ErrorRecord(), entityErrors: [], documentErrors: ErrorRecord()))
        }
    }

    func error(_ yaml: String) -> DeclarativeError? {
        if case .failure(let e) = load(yaml) { return e }
        return nil
    }

    /// An exported document restores its timestamps; without them the load time is stamped.
    @Test func givenTimestampsAreKept() throws {
        let config = try load("""
        _format_version: "3.0"
        services:
        - {name: restored, host: h, created_at: 1000, updated_at: 2000}
        - {name: fresh, host: h}
        """).get()
        let rows = config.rows("services")
        #expect(rows[0]["created_at"] == 1000)
        #expect(rows[0]["updated_at"] == 2000)
        #expect((rows[1]["updated_at"]?.intValue ?? 0) > 2000)
    }

    @Test func nestedEntitiesAreFlattenedWithDeterministicIDs() throws {
        let config = try load("""
        _format_version: "3.0"
        services:
        - name: echo
          url: http://echo.internal:8080/api
          routes:
          - name: echo-route
            paths: ["/echo", "~/v\\\\d+/echo$"]
        consumers:
        - username: alice
        """).get()
        let service = config.rows("services")[0]
        #expect(service["id"] == "adbd70b3-4224-5183-a52a-179d7b34ab5b", "UUIDv5 of the service name, as Kong")
        #expect(service["port"] == 8080)
        let route = config.rows("routes")[0]
        #expect(route["service"] == ["id": "adbd70b3-4224-5183-a52a-179d7b34ab5b"])
        #expect(route["paths"] == ["/echo", "~/v\\d+/echo$"])
        #expect(config.rows("consumers")[0]["id"] == "b32379d9-3d28-5683-a79c-72139be6e34f")
    }

    @Test func sameInputGivesSameIDs() throws {
        let yaml = "_format_version: \"3.0\"\nservices:\n- name: a\n  host: h\n"
        #expect(try load(yaml).get() .rows("services")[0]["id"] == (try load(yaml).get()).rows("services")[0]["id"])
    }

    @Test func nestedErrorFormMatchesKong() throws {
        let e = try #require(error("""
        _format_version: "3.0"
        services:
        - port: 70000
        """))
        #expect(e.kongError.json == [
            "code": 14, "name": "invalid declarative configuration",
            "message": "declarative config is invalid: {services={{host=\"required field missing\",port=\"value should be between 0 and 65535\"}}}",
            "fields": ["services": [["host": "required field missing", "port": "value should be between 0 and 65535"]]],
        ])
        #expect(e.text == """
        in 'services':
          - in entry 1 of 'services':
            in 'host': required field missing
            in 'port': value should be between 0 and 65535
        """)
    }

    @Test func duplicateNamesArePositional() throws {
        let e = try #require(error("""
        _format_version: "3.0"
        services:
        - name: foo
          host: a
        - name: foo
          host: b
        """))
        #expect(e.kongError.fields == ["services": [nil, "uniqueness violation: 'services' entity with name set to 'foo' already declared"]])
        #expect(e.kongError.message == "declarative config is invalid: {services={[2]=\"uniqueness violation: 'services' entity with name set to 'foo' already declared\"}}")
    }

    @Test func otherUniqueFieldsAreKeyedByEndpointKey() throws {
        let e = try #require(error("""
        _format_version: "3.0"
        consumers:
        - username: foo
          custom_id: conflict
        - username: bar
          custom_id: conflict
        """))
        #expect(e.kongError.fields == ["consumers": ["bar": "uniqueness violation: 'consumers' entity with custom_id set to 'conflict' already declared"]])
    }

    @Test func invalidReferences() throws {
        let e = try #require(error("""
        _format_version: "3.0"
        routes:
        - name: r1
          paths: ["/x"]
          service: nope
        """))
        // A list, as Kong's `validate_references` inserts each message (uniqueness: a string).
        #expect(e.kongError.fields == ["routes": ["r1": ["invalid reference 'service: nope' (no such entry in 'services')"]]])
        let flat = e.flattenedKongError.json
        #expect(flat["flattened_errors"] == [[
            "entity_type": "route", "entity_name": "r1",
            "entity": ["name": "r1", "paths": ["/x"], "service": "nope"],
            "errors": [["type": "entity", "message": "invalid reference 'service: nope' (no such entry in 'services')"]],
        ]])
    }

    @Test func referencesByNameAndIDResolve() throws {
        let config = try load("""
        _format_version: "3.0"
        services:
        - name: svc
          id: 3f2c6f0a-0b8c-4d5e-9a1b-2c3d4e5f6a7b
          host: h
        routes:
        - name: by-name
          paths: ["/a"]
          service: svc
        - name: by-id
          paths: ["/b"]
          service: {id: 3f2c6f0a-0b8c-4d5e-9a1b-2c3d4e5f6a7b}
        """).get()
        let svcID = config.rows("services")[0]["id"]!
        #expect(svcID == "3f2c6f0a-0b8c-4d5e-9a1b-2c3d4e5f6a7b")
        #expect(config.rows("routes")[0]["service"] == ["id": svcID])
        #expect(config.rows("routes")[1]["service"] == ["id": svcID])
        #expect(error("_format_version: \"3.0\"\nroutes:\n- paths: [\"/b\"]\n  service: {id: adbd70b3-4224-5183-a52a-179d7b34ab5b}\n") != nil)
    }

    @Test func flattenedErrorsForNestedChildren() throws {
        let e = try #require(error("""
        _format_version: "3.0"
        services:
        - name: svc
          host: h
          tags: [t1]
          routes:
          - name: bad
            methods: [get]
        """))
        let items = e.flattenedKongError.json["flattened_errors"]?.arrayValue ?? []
        #expect(items.count == 1)
        #expect(items.first?["entity_type"] == "route")
        #expect(items.first?["entity"]?["service"]?["id"] != nil, "nested child carries its parent link")
        #expect(items.first?["errors"] == [["type": "field", "field": "methods.1", "message": "invalid value: get"]])
        #expect(e.flattenedKongError.json["fields"] == [:])
        #expect(e.kongError.fields?["services"]?.arrayValue?.first?["routes"]?.arrayValue?.first?["methods"] == ["invalid value: get"])
    }

    @Test func documentHeader() throws {
        #expect(error("services: []")?.kongError.fields == ["_format_version": "required field missing"])
        #expect(error("_format_version: \"4.0\"")?.kongError.fields == ["_format_version": "expected one of: 1.1, 2.1, 3.0"])
        #expect(error("_format_version: \"3.0\"\nfoo: []")?.kongError.fields == ["foo": "unknown field"])
        #expect(error("_format_version: \"3.0\"\nupstreams: []")?.kongError.fields ==
                ["upstreams": "entity type 'upstreams' is not supported by Silverback"])
        #expect(error("_format_version: \"3.0\"\nservices: {}")?.kongError.fields == ["services": "expected an array"])
        let flat = try #require(error("services: []")).flattenedKongError.json
        #expect(flat["message"] == "declarative config is invalid: {_format_version=\"required field missing\"}")
        #expect(flat["flattened_errors"] == [])
    }

    @Test func consumerGroupMembershipInBothSpellings() throws {
        let config = try load("""
        _format_version: "3.0"
        consumer_groups:
        - name: gold
          consumers:
          - username: carol
        - name: silver
        consumers:
        - username: alice
          groups: [{name: gold}]
        - username: bob
          groups: [{name: gold}]
        - username: carol
        consumer_group_consumers:
        - consumer: bob
          consumer_group: silver
        """).get()
        let gold = config.rows("consumer_groups")[0]["id"]!
        let members = config.rows("consumer_group_consumers")
        #expect(members.count == 4)
        #expect(members.filter { $0["consumer_group"] == ["id": gold] }.count == 3)
        _ = try #require(error("""
        _format_version: "3.0"
        consumer_groups:
        - name: gold
        consumers:
        - username: alice
          groups: [{name: gold}, {name: gold}]
        """), "the same membership twice is a duplicate")
    }

    @Test func transformFlag() throws {
        #expect(try load("_format_version: \"3.0\"\n_transform: false\n").get().transform == false)
        #expect(try load("_format_version: \"3.0\"\n").get().transform == true)
        #expect(error("_format_version: \"3.0\"\n_transform: 1\n")?.kongError.fields == ["_transform": "expected a boolean"])
    }

    @Test func legacyFormatMigratesRegexPaths() throws {
        let config = try load("""
        _format_version: "1.1"
        services:
        - name: s
          host: h
          routes:
          - paths: ["/plain", "/v\\\\d+/x"]
        """).get()
        #expect(config.rows("routes")[0]["paths"] == ["/plain", "~/v\\d+/x"])
    }

    @Test func unreadableInput() {
        #expect(throws: DeclarativeLoadError.self) { try loader.load(text: "{", format: .json) }
        #expect(throws: DeclarativeLoadError.unreadable("unknown file type: kong.txt. (Accepted types: json, yaml)")) {
            try loader.load(path: "kong.txt")
        }
    }

    @Test func jsonDocument() throws {
        let config = try loader.load(text: #"{"_format_version":"3.0","consumers":[{"custom_id":"c"}]}"#, format: .json)
        #expect(config.rows("consumers").count == 1)
    }
}

struct SettingsTests {
    @Test func defaultsFileThenEnvironment() throws {
        let conf = """
        # comment
        database = off   # trailing comment
        declarative_config = /etc/kong/kong.yml
        proxy_listen = 0.0.0.0:9000, 127.0.0.1:9443 ssl
        plugins = bundled
        """
        let s = try Settings.load(confText: conf, confPath: "kong.conf",
                                  environment: ["KONG_PROXY_LISTEN": "127.0.0.1:8080", "KONG_OTHER": "ignored"])
        #expect(s.database == .off)
        #expect(s.declarativeConfig == "/etc/kong/kong.yml")
        #expect(s.proxyListen == [ListenAddress(host: "127.0.0.1", port: 8080)], "environment wins")
        #expect(s.adminListen == [ListenAddress(host: "127.0.0.1", port: 8001)])
        let fromFile = try Settings.load(confText: conf, confPath: "kong.conf", environment: [:])
        #expect(fromFile.proxyListen == [ListenAddress(host: "0.0.0.0", port: 9000),
                                         ListenAddress(host: "127.0.0.1", port: 9443, flags: ["ssl"])])
    }

    /// Without `-c`, Kong reads `/etc/kong/kong.conf`, else `/etc/kong.conf`, else nothing; a file
    /// named with `-c` must exist (`no file at: <path>`), and a default path never hides it.
    @Test func theConfigurationFileIsTheNamedOneOrKongsDefaultPaths() throws {
        #expect(Settings.defaultConfPaths == ["/etc/kong/kong.conf", "/etc/kong.conf"])
        let files: Set<String> = ["/etc/kong.conf", "/srv/kong.conf", "/etc/kong/kong.conf"]
        #expect(try Settings.confPath(named: nil, isFile: files.contains) == "/etc/kong/kong.conf")
        #expect(try Settings.confPath(named: nil, isFile: { $0 == "/etc/kong.conf" }) == "/etc/kong.conf")
        #expect(try Settings.confPath(named: nil, isFile: { _ in false }) == nil)
        #expect(try Settings.confPath(named: "/srv/kong.conf", isFile: files.contains) == "/srv/kong.conf")
        #expect(throws: SettingsError("no file at: /srv/missing.conf")) {
            try Settings.confPath(named: "/srv/missing.conf", isFile: files.contains)
        }
    }

    /// `proxy_access_log`: Kong's default `logs/access.log` under the prefix, an absolute path as
    /// given, `off`; nginx's further access_log arguments are named in a warning.
    @Test func proxyAccessLogPaths() throws {
        var s = try Settings.load(confText: "prefix = /srv/kong\n", confPath: "kong.conf", environment: [:])
        #expect(s.proxyAccessLogPath == "/srv/kong/logs/access.log")
        s = try Settings.load(confText: nil, confPath: nil, environment: ["KONG_PROXY_ACCESS_LOG": "/dev/stdout"])
        #expect(s.proxyAccessLogPath == "/dev/stdout")
        #expect(s.warnings.isEmpty)
        s = try Settings.load(confText: "proxy_access_log = off\n", confPath: "kong.conf", environment: [:])
        #expect(s.proxyAccessLogPath == nil)
        s = try Settings.load(confText: "proxy_access_log = logs/a.log custom buffer=16k\n", confPath: "kong.conf", environment: [:])
        #expect(s.proxyAccessLogPath == "/usr/local/kong/logs/a.log")
        #expect(s.warnings == ["kong.conf:1: proxy_access_log: 'custom buffer=16k' is not used by Silverback; lines are written in kong_log_format"])
        #expect(s.adminAccessLog == "logs/admin_access.log" && s.statusAccessLog == nil, "Kong's defaults")
        s = try Settings.load(confText: "admin_access_log = /var/log/admin.log\nstatus_access_log = logs/status.log\n",
                              confPath: "kong.conf", environment: [:])
        #expect(s.accessLogPath(s.adminAccessLog) == "/var/log/admin.log")
        #expect(s.accessLogPath(s.statusAccessLog) == "/usr/local/kong/logs/status.log")
        s = try Settings.load(confText: nil, confPath: nil, environment: ["KONG_PROXY_ACCESS_LOG": "syslog:server=10.0.0.1:514"])
        #expect(s.proxyAccessLogPath == nil)
        #expect(s.warnings == ["KONG_PROXY_ACCESS_LOG: proxy_access_log: syslog destinations are not supported by Silverback; no access log is written"])
    }

    /// Kong drops properties it does not know; Silverback says which ones it ignores and starts.
    /// Files with Windows line endings read as any other; `status_listen` and `role` are read.
    @Test func unusedPropertiesWarnAndCRLFFilesRead() throws {
        let conf = "# kong.conf from Windows\r\nproxy_listen = 127.0.0.1:9000\r\nnginx_worker_processes = auto\r\n"
            + "status_listen = 0.0.0.0:8100\r\nrole = traditional\r\n"
        let s = try Settings.load(confText: conf, confPath: "kong.conf", environment: [:])
        #expect(s.proxyListen == [ListenAddress(host: "127.0.0.1", port: 9000)])
        #expect(s.statusListen == [ListenAddress(host: "0.0.0.0", port: 8100)])
        #expect(s.warnings == ["kong.conf:3: property 'nginx_worker_processes' is not used by Silverback; ignored"])
        #expect(throws: SettingsError.self) {
            try Settings.load(confText: nil, confPath: nil, environment: ["KONG_ROLE": "data_plane"])
        }
    }

    @Test(arguments: [
        ("proxy_listen = 0.0.0.0:8000 proxy_protocol",
         "kong.conf:1: proxy_listen: the proxy_protocol flag is not supported (listeners do not read the PROXY protocol preamble)"),
        ("role = data_plane", "kong.conf:1: role = data_plane is not supported: Silverback runs in traditional mode only (no hybrid mode)"),
        ("database = mysql", "kong.conf:1: database has an invalid value: 'mysql' (off, sqlite, postgres)"),
        ("proxy_listen = 0.0.0.0", "kong.conf:1: proxy_listen has an invalid address: '0.0.0.0' (expected host:port)"),
        ("proxy_listen = 0.0.0.0:99999", "kong.conf:1: proxy_listen has an invalid address: '0.0.0.0:99999'"),
        ("log_level = loud", "kong.conf:1: log_level has an invalid value: 'loud' (debug, info, notice, warn, error, crit, alert, emerg)"),
        ("just words", "kong.conf:1: malformed line, expected 'name = value': just words"),
        ("trusted_ips = 10.0.0.0/33", "kong.conf:1: trusted_ips: invalid IP or CIDR range: '10.0.0.0/33'"),
        ("trusted_ips = example.com", "kong.conf:1: trusted_ips: invalid IP or CIDR range: 'example.com'"),
        ("trusted_ips = /", "kong.conf:1: trusted_ips: invalid IP or CIDR range: '/'"),
        ("trusted_ips = 1.2.3.4/", "kong.conf:1: trusted_ips: invalid IP or CIDR range: '1.2.3.4/'"),
        ("headers_upstream = off, x-kong-request-id",
         "kong.conf:1: headers_upstream: invalid header value: off, x-kong-request-id (x-kong-request-id, off)"),
        ("headers = server_tokens, bogus", "kong.conf:1: headers: invalid header value: bogus"),
        ("headers = off, server_tokens", "kong.conf:1: headers: 'off' cannot be used with other values"),
        ("headers_upstream = x-other", "kong.conf:1: headers_upstream: invalid header value: x-other (x-kong-request-id, off)"),
        ("allow_debug_header = yes", "kong.conf:1: allow_debug_header is not a boolean: 'yes' (on, off)"),
        ("port_maps = 80", "kong.conf:1: port_maps: invalid port mapping '80' (host_port:container_port)"),
        ("port_maps = 80:8000, 443:99999", "kong.conf:1: port_maps: invalid port mapping '443:99999' (host_port:container_port)"),
        ("port_maps = 80:8000:1", "kong.conf:1: port_maps: invalid port mapping '80:8000:1' (host_port:container_port)"),
        ("nginx_http_client_body_timeout = 0", "kong.conf:1: nginx_http_client_body_timeout is not a valid time: '0' (e.g. 60s, 1m)"),
        ("nginx_http_keepalive_timeout = soon", "kong.conf:1: nginx_http_keepalive_timeout is not a valid time: 'soon' (e.g. 60s, 1m)"),
        ("nginx_http_client_header_timeout = 5x", "kong.conf:1: nginx_http_client_header_timeout is not a valid time: '5x' (e.g. 60s, 1m)"),
        ("nginx_http_client_header_timeout = 999999999d", "kong.conf:1: nginx_http_client_header_timeout is not a valid time: '999999999d' (e.g. 60s, 1m)"),
    ])
    func malformedSettings(line: String, message: String) {
        #expect(throws: SettingsError(message)) {
            try Settings.load(confText: line, confPath: "kong.conf", environment: [:])
        }
    }

    /// Client timeouts: nginx's defaults, or Kong's `nginx_http_*` injected directives in nginx's
    /// time syntax (`keepalive_timeout`'s optional second value is ignored).
    @Test func clientTimeoutSettings() throws {
        let defaults = try Settings.load(confText: nil, confPath: nil, environment: [:]).proxy.clientTimeouts
        #expect(defaults.header == .seconds(60) && defaults.body == .seconds(60) && defaults.keepalive == .seconds(75))
        let set = try Settings.load(confText: "nginx_http_client_body_timeout = 1m30s\nnginx_http_keepalive_timeout = 15 10",
                                    confPath: nil, environment: ["KONG_NGINX_HTTP_CLIENT_HEADER_TIMEOUT": "500ms"]).proxy.clientTimeouts
        #expect(set.body == .seconds(90))
        #expect(set.keepalive == .seconds(15))
        #expect(set.header == .milliseconds(500))
        let off = try Settings.load(confText: "nginx_http_keepalive_timeout = 0", confPath: nil, environment: [:])
        #expect(off.proxy.clientTimeouts.keepalive == .zero, "keep-alive off, as nginx's `keepalive_timeout 0`")
    }

    @Test func proxyHeaderSettings() throws {
        let defaults = try Settings.load(confText: nil, confPath: nil, environment: [:])
        #expect(defaults.proxy.responseHeaders == .kongDefault)
        #expect(defaults.proxy.trustedIPs.isEmpty && defaults.proxy.requestIDUpstream)
        let off = try Settings.load(confText: "headers = off\nheaders_upstream = off", confPath: nil, environment: [:])
        #expect(off.proxy.responseHeaders == .none)
        #expect(!off.proxy.requestIDUpstream)
        let some = try Settings.load(confText: "headers = Server, X-Kong-Upstream-Status", confPath: nil, environment: [:])
        #expect(some.proxy.responseHeaders.server && some.proxy.responseHeaders.upstreamStatus)
        #expect(!some.proxy.responseHeaders.via && !some.proxy.responseHeaders.proxyLatency && !some.proxy.responseHeaders.requestID)
        let latency = try Settings.load(confText: "headers = latency_tokens", confPath: nil, environment: [:]).proxy.responseHeaders
        #expect(latency.proxyLatency && latency.upstreamLatency && latency.responseLatency && latency.adminLatency && !latency.server)
        #expect(!defaults.proxy.allowDebugHeader && defaults.proxy.portMaps.isEmpty)
        let debug = try Settings.load(confText: "allow_debug_header = on", confPath: nil,
                                      environment: ["KONG_PORT_MAPS": "80:8000, 443:8443"])
        #expect(debug.proxy.allowDebugHeader)
        #expect(debug.proxy.portMaps == [8000: 80, 8443: 443], "keyed by the port this node listens on")
    }

    /// `real_ip_header` (default `X-Real-IP`) and `real_ip_recursive` (default off); the PROXY
    /// protocol is refused by name (no listener reads its preamble); the header's entries are read
    /// from the right, skipping trusted proxies only when recursive.
    @Test func realIPSettingsAndTheAddressTheyName() throws {
        let defaults = try Settings.load(confText: nil, confPath: nil, environment: [:]).proxy
        #expect(defaults.realIPHeader == "x-real-ip" && !defaults.realIPRecursive)
        let set = try Settings.load(confText: "real_ip_header = X-Forwarded-For\nreal_ip_recursive = on",
                                    confPath: nil, environment: ["KONG_TRUSTED_IPS": "10.0.0.0/8"]).proxy
        #expect(set.realIPHeader == "x-forwarded-for" && set.realIPRecursive)
        #expect(throws: SettingsError.self) {
            try Settings.load(confText: nil, confPath: nil, environment: ["KONG_REAL_IP_HEADER": "proxy_protocol"])
        }
        let list = HTTPHeaders([("X-Forwarded-For", "1.1.1.1, 2.2.2.2"), ("X-Forwarded-For", "10.0.0.1:8080")])
        #expect(RealIP.forwardedAddress(list, options: set) == "2.2.2.2", "10.0.0.1 is a trusted proxy: skipped")
        var flat = set
        flat.realIPRecursive = false
        #expect(RealIP.forwardedAddress(list, options: flat) == "10.0.0.1", "not recursive: the last entry, its port dropped")
        #expect(RealIP.forwardedAddress(HTTPHeaders([("X-Forwarded-For", "[2001:db8::1]:443")]), options: flat) == "2001:db8::1")
        #expect(RealIP.forwardedAddress(HTTPHeaders([("X-Forwarded-For", "unknown")]), options: flat) == nil)
        #expect(RealIP.forwardedAddress(HTTPHeaders(), options: flat) == nil)
    }

    @Test func trustedIPsMatchAddressesAndBlocks() throws {
        let ips = try TrustedIPs.parse("10.1.2.3, 192.168.0.0/16, 2001:db8::/32, unix:").get()
        #expect(ips.contains("10.1.2.3"))
        #expect(!ips.contains("10.1.2.4"))
        #expect(ips.contains("192.168.200.1"))
        #expect(!ips.contains("192.169.0.1"))
        #expect(ips.contains("2001:db8:1::5"))
        #expect(!ips.contains("2001:db9::1"))
        #expect(ips.contains("::ffff:192.168.1.1"), "IPv4-mapped IPv6 peers match IPv4 blocks")
        #expect(!ips.contains("not an address"))
        let everyone = try TrustedIPs.parse("0.0.0.0/0,::/0").get()
        #expect(everyone.contains("8.8.8.8") && everyone.contains("::1"))
        #expect(!TrustedIPs().contains("127.0.0.1"), "nobody is trusted by default")
    }

    @Test func malformedEnvironmentValue() {
        #expect(throws: SettingsError("KONG_DATABASE: database has an invalid value: 'x' (off, sqlite, postgres)")) {
            try Settings.load(confText: nil, confPath: nil, environment: ["KONG_DATABASE": "x"])
        }
    }
}

/// Review follow-ups: ids, credentials, cache keys, scope exclusivity.
struct DeclarativeEntityRulesTests {
    let loader = DeclarativeLoader(registry: EntityRegistry(plugins: [PluginDefinition(
        name: "key-auth", priority: 1250, version: "test",
        config: RecordSchema(["key_names": Field.array(of: Field.string).default(["apikey"])]),
        forbiddenScopes: [.consumer], entities: [KeyAuthCredentialSchema.schema])]))

    func load(_ yaml: String) throws -> DeclarativeConfig {
        try loader.load(text: "_format_version: \"3.0\"\n" + yaml, format: .yaml)
    }

    func failure(_ yaml: String) -> DeclarativeError? {
        do {
            _ = try loader.load(text: "_format_version: \"3.0\"\n" + yaml, format: .yaml)
            return nil
        } catch .invalid(let e) {
            return e
        } catch {
            return nil
        }
    }

    @Test func pluginIDsFollowKongsCacheKey() throws {
        let config = try load("""
        services:
        - name: echo
          host: h
          plugins:
          - name: key-auth
        plugins:
        - name: key-auth
        """)
        let ids = config.rows("plugins").compactMap { $0["id"]?.stringValue }.sorted()
        // uuid5(uuid5(NS, "plugins"), "plugins:*:key-auth:::") and "...::<service id>:".
        #expect(ids == ["6b4f38d1-e026-540b-a5ea-8634739dd2a7", "f6f079ef-c073-533c-a0e6-a1d80b2897e7"])
    }

    @Test func credentialIDsNeverDeriveFromTheSecret() throws {
        let yaml = "consumers:\n- username: a\n  keyauth_credentials:\n  - key: secret\n"
        let first = try load(yaml).rows("keyauth_credentials")[0]["id"]
        let second = try load(yaml).rows("keyauth_credentials")[0]["id"]
        #expect(first != second, "a credential without id gets a random one")
        #expect(try load(yaml).rows("keyauth_credentials")[0]["key"] == "secret")
    }

    @Test func credentialRules() throws {
        let ttl = try #require(failure("consumers:\n- username: a\n  keyauth_credentials:\n  - {key: k, ttl: -1}\n"))
        #expect(ttl.kongError.fields == ["consumers": [["keyauth_credentials": [["ttl": "must be an integer between 0 and 100000000"]]]]])
        let dup = try #require(failure("consumers:\n- username: a\n  keyauth_credentials:\n  - key: k\n  - key: k\n"))
        #expect(dup.kongError.fields == ["keyauth_credentials": ["k": "uniqueness violation: 'keyauth_credentials' entity with key set to 'k' already declared"]]
                || dup.kongError.fields == ["consumers": [["keyauth_credentials": [nil, "uniqueness violation: 'keyauth_credentials' entity with key set to 'k' already declared"]]]])
        let orphan = try #require(failure("keyauth_credentials:\n- key: k\n"))
        #expect(orphan.kongError.fields == ["keyauth_credentials": [["consumer": "required field missing"]]])
    }

    @Test func samePluginSameScopeTwiceIsRefused() throws {
        let e = try #require(failure("""
        services:
        - name: svc
          host: h
          plugins:
          - name: key-auth
        plugins:
        - name: key-auth
          service: svc
        """))
        // The nested instance is the later one (top-level keys load in name order).
        let message = try #require(e.kongError.fields?["services"]?.arrayValue?.first?["plugins"]?.arrayValue?.first?.stringValue)
        #expect(message.hasPrefix("uniqueness violation: 'plugins' entity with cache key set to '{"))
        #expect(message.contains("name=\"key-auth\""))
    }

    @Test func consumerAndConsumerGroupScopesExclude() throws {
        let registry = EntityRegistry(plugins: [PluginDefinition(name: "p", priority: 1, version: "t", config: RecordSchema([:]))])
        let result = registry["plugins"]!.process(["name": "p", "consumer": ["id": "6e2a4b8c-1f3d-4a5b-9c7d-0e1f2a3b4c5d"],
                                                  "consumer_group": ["id": "7e2a4b8c-1f3d-4a5b-9c7d-0e1f2a3b4c5d"]],
                                                 context: .insert)
        guard case .failure(let errors) = result else { Issue.record("accepted"); return }
        #expect(errors.entity == ["only one or none of these fields must be set: 'consumer', 'consumer_group'"])
    }

    @Test func explicitNullIDIsGenerated() throws {
        let config = try load("services:\n- {name: s, host: h, id: null, routes: [{paths: [\"/a\"]}]}\n")
        let id = try #require(config.rows("services")[0]["id"]?.stringValue)
        #expect(UUIDText.isValid(id))
        #expect(config.rows("routes")[0]["service"] == ["id": .string(id)])
    }

    /// Unresolved references are reported as such, never also as a scope declared twice (both
    /// stood in for by the same placeholder id); a membership, which has no name or id to be keyed
    /// by, is reported where it was written, each of them.
    @Test func unresolvedReferencesAreNotDuplicatesAndMembershipsKeepTheirPlace() throws {
        let e = try #require(failure("""
        plugins:
        - {name: key-auth, service: svc-one}
        - {name: key-auth, service: svc-two}
        consumers:
        - username: alice
          groups: [{name: silver}, {name: bronze}]
        - username: bob
        consumer_group_consumers:
        - {consumer: bob, consumer_group: silver}
        - {consumer: carol, consumer_group: gold}
        """))
        let text = e.kongError.json.serialized()
        #expect(!text.contains("uniqueness"), "\(text)")
        let plugins = try #require(e.kongError.fields?["plugins"]?.objectValue)
        #expect(plugins.count == 2 && plugins.values.allSatisfy { $0.arrayValue?.count == 1 }, "keyed by each plugin's id")
        #expect(e.kongError.fields?["consumers"]?.arrayValue?.first?["groups"]?.arrayValue?.count == 2,
                "both of alice's memberships, at their places")
        let top = try #require(e.kongError.fields?["consumer_group_consumers"]?.arrayValue)
        #expect(top.count == 2)
        #expect(top.last?["@entity"] == [
            "invalid reference 'consumer_group: gold' (no such entry in 'consumer_groups')",
            "invalid reference 'consumer: carol' (no such entry in 'consumers')",
        ])
        #expect(e.flattenedKongError.json["flattened_errors"]?.arrayValue?.count == 6, "every entity with an error has its item")
    }

    /// A duplicate name does not hide the entity's schema errors: both are reported, the message
    /// under `@entity`; a lone duplicate is still the entry itself (Kong's example).
    @Test func aDuplicateKeepsItsSchemaErrors() throws {
        let e = try #require(failure("""
        services:
        - {name: foo, host: a}
        - {name: foo, host: b, port: 70000}
        - {name: foo, host: c}
        """))
        let duplicate = "uniqueness violation: 'services' entity with name set to 'foo' already declared"
        #expect(e.kongError.fields == ["services": [.null,
                                                    ["@entity": [.string(duplicate)], "port": "value should be between 0 and 65535"],
                                                    .string(duplicate)]])
    }

    /// A nested child list, decK membership list or `_comment`/`_ignore` of the wrong type is an
    /// error of its entity: in the nested tree at the entity, and as a field error of its item
    /// with `flatten_errors` (it was only in `fields` before).
    @Test func mistypedListsAndMetaFieldsAreErrorsOfTheirEntity() throws {
        let e = try #require(failure("""
        services:
        - {name: a, host: a, routes: x, _comment: 5}
        consumers:
        - {username: bob, groups: foo, _ignore: notalist}
        """))
        #expect(e.kongError.fields?["services"]?.arrayValue?.first == ["routes": "expected an array", "_comment": "expected a string"])
        let flat = e.flattenedKongError.json
        #expect(flat["fields"] == [:])
        let items = flat["flattened_errors"]?.arrayValue ?? []
        #expect(items.count == 2)
        let service = try #require(items.first { $0["entity_type"] == "service" })
        #expect(Set(service["errors"]?.arrayValue?.compactMap { $0["field"]?.stringValue } ?? []) == ["routes", "_comment"])
        let consumer = try #require(items.first { $0["entity_type"] == "consumer" })
        #expect(Set(consumer["errors"]?.arrayValue?.compactMap { $0["field"]?.stringValue } ?? []) == ["groups", "_ignore"])
    }

    @Test func everyReferenceErrorOfAnEntityIsKept() throws {
        let e = try #require(failure("""
        consumers:
        - username: a
        plugins:
        - name: key-auth
          instance_name: ka
          route: nope-route
          service: nope-service
        """))
        #expect(e.kongError.fields == ["plugins": ["ka": [
            "invalid reference 'route: nope-route' (no such entry in 'routes')",
            "invalid reference 'service: nope-service' (no such entry in 'services')",
        ]]])
        #expect(e.kongError.fields?["plugins"]?["ka"]?.arrayValue?.count == 2)
    }
}

/// Flattened errors (spec §5.6): a nested record's entity check gives an entity item without a
/// field, as Kong's `categorize_errors` writes every `@entity` list.
@Test func nestedEntityChecksFlattenWithoutAField() throws {
    let plugin = PluginDefinition(name: "p", priority: 1, version: "t", config: RecordSchema([
        "auth": Field.record(["name": Field.string.required(false), "value": Field.string.required(false)],
                             checks: [.mutuallyRequired(["name", "value"])]).required(false),
    ]))
    let loader = DeclarativeLoader(registry: EntityRegistry(plugins: [plugin]))
    do {
        _ = try loader.load(text: """
        _format_version: "3.0"
        plugins:
        - name: p
          config: {auth: {name: x}}
        """, format: .yaml)
        Issue.record("the configuration was accepted")
    } catch .invalid(let e) {
        let items = e.flattenedKongError.json["flattened_errors"]?.arrayValue ?? []
        #expect(items.first?["errors"] == [["type": "entity", "message": "all or none of these fields must be set: 'name', 'value'"]])
    } catch {
        Issue.record("unexpected \(error)")
    }
}
