/// The Kong release Silverback answers as: the Admin API's `version`, the `Server` token, the
/// bundled plugins' versions.
public enum KongVersion {
    public static let number = "3.10.0"
    public static let serverToken = "kong/" + number
}
