import Foundation

/// Bearer tokens per credential identity, kept until shortly before they expire; concurrent
/// requests for one identity share a single fetch. Once a token is due for refresh it is still
/// served, while one background fetch replaces it, until it actually expires: a slow or failing
/// token endpoint costs no request anything while a valid token is in hand. Failures are not
/// cached.
///
/// Keys identify a credential (endpoint, account, key id), never contain a secret, and are not
/// logged.
public actor CloudTokenCache {
    /// The process-wide cache: tokens outlive configuration snapshots.
    public static let shared = CloudTokenCache()

    public typealias Fetch = @Sendable () async throws(LLMCloudIdentityError) -> CloudToken
    private typealias Fetching = Task<Result<CloudToken, LLMCloudIdentityError>, Never>

    private struct Entry {
        let token: String
        let refreshAt: Date
        let expiresAt: Date
    }

    private var entries: [String: Entry] = [:]
    private var inFlight: [String: Fetching] = [:]

    public init() {}

    /// The cached token for `key`, or the result of `fetch` (joined when one is already running).
    /// A token is refreshed from `expires_in` minus min(60 s, expires_in / 2) after `now` of the
    /// request that fetched it, and served until `expires_in`.
    public func token(for key: String, now: Date, fetch: @escaping Fetch) async throws(LLMCloudIdentityError) -> String {
        let cached = entries[key]
        if let cached, now < cached.refreshAt { return cached.token }
        let task = inFlight[key] ?? startFetch(key, now: now, fetch: fetch)
        if let cached, now < cached.expiresAt { return cached.token }
        return try await task.value.get().accessToken
    }

    /// One fetch for `key`, whose result is filed when it ends, whoever waits for it.
    private func startFetch(_ key: String, now: Date, fetch: @escaping Fetch) -> Fetching {
        let task: Fetching = Task.detached {
            do throws(LLMCloudIdentityError) { return .success(try await fetch()) } catch { return .failure(error) }
        }
        inFlight[key] = task
        Task { await self.file(task, for: key, fetchedAt: now) }
        return task
    }

    private func file(_ task: Fetching, for key: String, fetchedAt now: Date) async {
        let result = await task.value
        inFlight[key] = nil
        if case .success(let token) = result {
            let lifetime = max(0, token.expiresIn)
            entries[key] = Entry(token: token.accessToken,
                                 refreshAt: now.addingTimeInterval(lifetime - min(60, lifetime / 2)),
                                 expiresAt: now.addingTimeInterval(lifetime))
        }
    }
}
