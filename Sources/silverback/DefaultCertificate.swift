import Core
import Crypto
import Foundation
import X509
#if canImport(Glibc)
import Glibc
#endif

/// Kong's default certificate: a node with `ssl` proxy listeners and no `ssl_cert` serves a
/// self-signed certificate it made itself (Kong's `kong-default.crt`, CN `localhost`), kept under
/// `<prefix>/ssl` so restarts present the same one. Kong's default `proxy_listen` and its Helm
/// chart open `8443 ssl` without a certificate; a node that refused them would not start there.
enum DefaultCertificate {
    static func files(prefix: String) throws -> TLSCertificateFiles {
        let folder = prefix + "/ssl"
        let files = TLSCertificateFiles(certificatePath: folder + "/silverback-default.crt",
                                        keyPath: folder + "/silverback-default.key")
        let manager = FileManager.default
        try manager.createDirectory(atPath: folder, withIntermediateDirectories: true)
        // Two nodes starting on one prefix make the pair once between them.
        let lock = open(folder + "/.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw CLIError("could not open \(folder)/.lock: \(String(cString: strerror(errno)))") }
        defer { close(lock) }
        flock(lock, LOCK_EX)
        if manager.fileExists(atPath: files.certificatePath) && manager.fileExists(atPath: files.keyPath) { return files }

        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            CommonName("localhost")
            OrganizationName("Silverback")
        }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now - 86_400, notValidAfter: now + 20 * 365 * 86_400, issuer: name, subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions { SubjectAlternativeNames([.dnsName("localhost")]) },
            issuerPrivateKey: .init(key))
        // Each file whole under a temporary name, then renamed: the key created `0600` (never
        // readable by others, even for a moment), the certificate last, so a pair on disk is
        // always complete and matching.
        try write(key.pemRepresentation, to: files.keyPath, mode: 0o600)
        try write(try certificate.serializeAsPEM().pemString, to: files.certificatePath, mode: 0o644)
        return files
    }

    private static func write(_ text: String, to path: String, mode: mode_t) throws {
        let temporary = path + ".tmp"
        unlink(temporary)
        let descriptor = open(temporary, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw CLIError("could not write \(temporary): \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor) == 0
        close(descriptor)
        guard written == bytes.count, synced, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw CLIError("could not write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
