import Testing
@testable import Core

/// The router against spec §6 (inputs, predicates, priority, upstream path and Host).
struct RouterTests {
    /// Builds a router from a declarative YAML body (services/routes only).
    func router(_ yaml: String) throws -> Router {
        let config = try DeclarativeLoader(registry: EntityRegistry(plugins: []))
            .load(text: "_format_version: \"3.0\"\n" + yaml, format: .yaml)
        return Router(snapshot: ConfigSnapshot(config))
    }

    func request(_ path: String, method: String = "GET", host: String? = "example.com",
                 headers: [String: [String]] = [:], port: Int = 8000) -> RouterRequest {
        RouterRequest(method: method, host: host, rawPath: Substring(path), headers: headers, localPort: port)
    }

    func matched(_ router: Router, _ req: RouterRequest) -> String? { router.match(req)?.route.name }

    @Test func prefixPathsAreStringPrefixesAndLongerWins() throws {
        let r = try router("""
        services:
        - name: s
          host: up
          routes:
          - {name: short, paths: ["/foo"]}
          - {name: long, paths: ["/foo/bar"]}
        """)
        #expect(matched(r, request("/foo")) == "short")
        #expect(matched(r, request("/foobar")) == "short", "a plain path is a pure string prefix")
        #expect(matched(r, request("/foo/bar/baz")) == "long")
        #expect(matched(r, request("/other")) == nil)
    }

    @Test func moreMatchedFieldsWinThenPlainHostsThenHeaders() throws {
        let r = try router("""
        services:
        - name: s
          host: up
          routes:
          - {name: path-only, paths: ["/a"]}
          - {name: method-and-path, paths: ["/a"], methods: [POST]}
          - {name: wildcard-host, paths: ["/a"], hosts: ["*.example.com"]}
          - {name: plain-host, paths: ["/a"], hosts: ["api.example.com"]}
          - {name: header, paths: ["/a"], headers: {x-team: [blue]}}
        """)
        #expect(matched(r, request("/a")) == "path-only")
        #expect(matched(r, request("/a", method: "POST")) == "method-and-path")
        #expect(matched(r, request("/a", host: "api.example.com")) == "plain-host")
        #expect(matched(r, request("/a", host: "www.example.com")) == "wildcard-host")
        #expect(matched(r, request("/a", headers: ["x-team": ["Blue"]])) == "header", "header values compare case-insensitively")
    }

    @Test func hostsWithWildcardsAndPorts() throws {
        let r = try router("""
        services:
        - name: s
          host: up
          routes:
          - {name: suffix, hosts: ["*.example.com"]}
          - {name: prefix, hosts: ["api.*"]}
          - {name: port, hosts: ["ported.test:8443"]}
        """)
        #expect(matched(r, request("/", host: "a.b.example.com")) == "suffix")
        #expect(matched(r, request("/", host: "example.com")) == nil, "*.suffix does not match the bare suffix")
        #expect(matched(r, request("/", host: "api.internal")) == "prefix")
        #expect(matched(r, request("/", host: "ported.test:8443")) == "port")
        #expect(matched(r, request("/", host: "ported.test", port: 8443)) == "port", "the listening port stands in")
        #expect(matched(r, request("/", host: "ported.test:80")) == nil)
        #expect(matched(r, request("/", host: nil)) == nil, "no Host: host predicates fail")
    }

    @Test func regexPathsAnchorAtStartAndExposeCaptures() throws {
        let r = try router("""
        services:
        - name: s
          host: up
          routes:
          - {name: versioned, paths: ["~/v(?<version>\\\\d+)/(items)$"], regex_priority: 5}
          - {name: plain, paths: ["/v1/items"]}
        """)
        let m = try #require(r.match(request("/v2/items")))
        #expect(m.route.name == "versioned")
        #expect(m.captures == ["/v2/items", "2", "items"])
        #expect(m.namedCaptures == ["version": "2"])
        #expect(m.matchedPrefix == "/v2/items")
        #expect(matched(r, request("/v1/items")) == "versioned", "regex paths rank before prefixes")
        #expect(matched(r, request("/x/v2/items")) == nil, "anchored at the start")
    }

    /// Rust's `$` is the end of the text: a path that only adds a line break does not match
    /// (ICU alone would have routed `/v1/echo%0A`); inside a class or escaped, `$` is a literal;
    /// a `(?m)` pattern keeps its line-end meaning.
    @Test func regexEndAnchorsMeanTheEndOfThePath() throws {
        let r = try router("""
        services:
        - name: s
          host: up
          routes:
          - {name: anchored, paths: ["~/v\\\\d+/echo$"]}
          - {name: dollar, paths: ["~/cost/[$]\\\\$\\\\d+$"]}
        """)
        #expect(matched(r, request("/v1/echo")) == "anchored")
        #expect(matched(r, request("/v1/echo%0A")) == nil, "a trailing line break is not the end")
        #expect(matched(r, request("/v1/echo%0D%0A")) == nil)
        #expect(matched(r, request("/v1/echo/more")) == nil)
        #expect(matched(r, request("/cost/$$5")) == "dollar")
        #expect(matched(r, request("/cost/$$5%0A")) == nil)
        #expect(RustRegexSyntax.icuPattern("^/a$") == #"^/a\z"#)
        #expect(RustRegexSyntax.icuPattern(#"[]$]\$(?P<x>a)$"#) == #"[]$]\$(?<x>a)\z"#)
        #expect(RustRegexSyntax.icuPattern("(?m)^a$") == "(?m)^a$", "multi-line: `$` ends a line in both")
        #expect(RustRegexSyntax.icuPattern("(?i-m)a$") == #"(?i-m)a\z"#)
        #expect(RustRegexSyntax.icuPattern(#"/api\(?mobile\)?$"#) == #"/api\(?mobile\)?\z"#, "an escaped ( is no flag group")
        #expect(RustRegexSyntax.icuPattern("/a[(?m]$") == #"/a[(?m]\z"#, "nor one inside a class")
        #expect(RustRegexSyntax.icuPattern("/a[](?m)]$") == #"/a[](?m)]\z"#, "a class opening with ] holds the (")
    }

    /// Kong's PLAIN bit is `type(hosts) == "table"`: an empty `hosts` list ranks as plain hosts,
    /// above a route without `hosts` (which the larger id would otherwise win).
    @Test func anEmptyHostsListRanksAsPlainHosts() throws {
        let r = try router("""
        services:
        - name: s
          host: up
          routes:
          - {name: emptyhosts, id: 00000000-0000-4000-8000-000000000001, paths: ["/eh"], hosts: []}
          - {name: nullhosts, id: ffffffff-ffff-4fff-bfff-ffffffffffff, paths: ["/eh"]}
        """)
        #expect(matched(r, request("/eh")) == "emptyhosts")
        #expect(matched(r, request("/eh", host: "any.example")) == "emptyhosts", "an empty list constrains no host")
    }

    @Test func headerNamesNormaliseAndRegexValues() throws {
        let r = try router("""
        services:
        - name: s
          host: up
          routes:
          - {name: h, headers: {X-Client_Version: ["~*^beta-\\\\d+$"]}}
        """)
        #expect(matched(r, request("/", headers: [RouterRequest.normalizedHeaderName("x_client-version"): ["BETA-7"]])) == "h")
        #expect(matched(r, request("/", headers: ["x-client-version": ["stable"]])) == nil)
    }

    @Test func requestPathsAreNormalisedBeforeMatching() throws {
        let r = try router("""
        services:
        - name: s
          host: up
          routes:
          - {name: r, paths: ["/a/b"]}
        """)
        #expect(matched(r, request("/x/../a//%62")) == "r")
        #expect(RequestPath.normalize("/a%2Fb/%7e") == "/a%2Fb/~", "reserved characters stay encoded")
        #expect(RequestPath.normalize("/a%2fb") == "/a%2Fb")
    }

    @Test func splitRoutesReportTheOriginalRoute() throws {
        let r = try router("""
        services:
        - name: s
          host: up
          routes:
          - {name: multi, paths: ["/ab", "/abcd", "~/re$"]}
          - {name: other, paths: ["/abc"]}
        """)
        #expect(r.count == 4, "three path groups plus one plain route")
        #expect(matched(r, request("/abcd/x")) == "multi")
        #expect(matched(r, request("/abc")) == "other", "the /abcd group is longer; /abc outranks the /ab group")
        #expect(matched(r, request("/re")) == "multi")
        #expect(matched(r, request("/ab")) == "multi")
    }

    @Test func disabledServicesAndServicelessRoutes() throws {
        let r = try router("""
        services:
        - name: disabled
          host: up
          enabled: false
          routes:
          - {name: hidden, paths: ["/off"]}
        routes:
        - {name: no-service, paths: ["/none"]}
        """)
        #expect(matched(r, request("/off")) == nil, "routes of a disabled service are left out")
        let m = try #require(r.match(request("/none")))
        #expect(m.service == nil)
    }

    @Test func tiesGoToTheLargerRouteID() throws {
        let r = try router("""
        routes:
        - {id: 00000000-0000-4000-8000-000000000001, name: low, paths: ["/t"]}
        - {id: 00000000-0000-4000-8000-000000000002, name: high, paths: ["/t"]}
        """)
        #expect(matched(r, request("/t")) == "high")
    }

    @Test func manyRoutesStillMatchTheRightOne() throws {
        var yaml = "services:\n- name: s\n  host: up\n  routes:\n"
        for i in 0..<1000 { yaml += "  - {name: r\(i), paths: [\"/svc\(i)/\"]}\n" }
        let r = try router(yaml)
        #expect(r.count == 1000)
        #expect(matched(r, request("/svc999/x")) == "r999")
        #expect(matched(r, request("/svc10/")) == "r10")
        #expect(matched(r, request("/svc1000/")) == nil)
    }

    @Test(arguments: [
        // (service path, request path, strip prefix, expected) — spec §6.5 examples and table rows.
        (nil as String?, "/foo", "/foo" as String?, "/"),
        (nil, "/foo/bar", "/foo", "/bar"),
        (nil, "/foobar", "/foo", "/bar"),
        ("/api", "/foo", "/foo", "/api"),
        ("/api", "/foo/", "/foo", "/api/"),
        ("/api", "/foo/x", "/foo", "/api/x"),
        ("/api", "/foo/x", nil, "/api/foo/x"),
        ("/api", "/", nil, "/api"),
        ("/api/", "/foo", "/foo", "/api"),
        ("/api/", "/foo/", "/foo", "/api/"),
        ("/api/", "/foo/x", "/foo", "/api/x"),
        ("/api/", "/foox", "/foo", "/api/x"),
        ("/api/", "/foo/x", nil, "/api/foo/x"),
    ])
    func upstreamPaths(service: String?, request: String, strip: String?, expected: String) {
        #expect(RequestPath.upstreamPath(servicePath: service, requestPath: request, strippedPrefix: strip) == expected)
    }

    @Test func upstreamTargetEncodesAndKeepsTheRawQuery() {
        #expect(RequestPath.upstreamTarget(path: "/a b/é", rawQuery: "x=1&y=%20") == "/a%20b/%C3%A9?x=1&y=%20")
        #expect(RequestPath.upstreamTarget(path: "/p", rawQuery: "") == "/p?")
        #expect(RequestPath.upstreamTarget(path: "/p", rawQuery: nil) == "/p")
    }

    @Test func upstreamHostHeader() throws {
        let config = try DeclarativeLoader(registry: EntityRegistry(plugins: [])).load(text: """
        _format_version: "3.0"
        services:
        - {name: a, url: "https://secure.test"}
        - {name: b, url: "http://plain.test:8080"}
        """, format: .yaml)
        let services = ConfigSnapshot(config).services
        #expect(RequestPath.upstreamHost(service: services[0], preserveHost: false, clientHost: "c") == "secure.test")
        #expect(RequestPath.upstreamHost(service: services[1], preserveHost: false, clientHost: "c") == "plain.test:8080")
        #expect(RequestPath.upstreamHost(service: services[1], preserveHost: true, clientHost: "client.test:81") == "client.test:81")
    }
}
