import Core
import Testing

/// `{vault://env/...}` resolution (Kong's env vault): name upper-cased, `-` → `_`, optional JSON key.
struct VaultReferenceTests {
    let environment = ["OPENAI_KEY": "sk-1", "CREDS": #"{"id":"abc","secret":"s3"}"#]

    @Test func plainValuesAreReturnedUnchanged() {
        #expect(VaultReference.resolve("Bearer x", environment: environment) == "Bearer x")
    }

    @Test func envReferencesReadTheVariable() {
        #expect(VaultReference.resolve("{vault://env/openai-key}", environment: environment) == "sk-1")
        #expect(VaultReference.resolve("{vault://env/creds/secret}", environment: environment) == "s3")
    }

    @Test func unresolvableReferencesAreNil() {
        #expect(VaultReference.resolve("{vault://env/missing}", environment: environment) == nil)
        #expect(VaultReference.resolve("{vault://aws/openai-key}", environment: environment) == nil)
        #expect(VaultReference.resolve("{vault://env/creds/absent}", environment: environment) == nil)
        #expect(VaultReference.resolve("{vault://env/openai-key/field}", environment: environment) == nil)
    }

    @Test func onlyWholeReferencesCount() {
        #expect(!VaultReference.isReference("Bearer {vault://env/x}"))
        #expect(!VaultReference.isReference("{vault://}"))
        #expect(VaultReference.isReference("{vault://env/x}"))
    }
}
