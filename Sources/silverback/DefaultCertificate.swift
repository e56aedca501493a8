import Core
import Crypto
import Foundation
import X509

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
        if manager.fileExists(atPath: files.certificatePath) && manager.fileExists(atPath: files.keyPath) { return files }
        try manager.createDirectory(atPath: folder, withIntermediateDirectories: true)
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
        // The key first, readable by the node's user only.
        guard manager.createFile(atPath: files.keyPath, contents: Data(key.pemRepresentation.utf8),
                                 attributes: [.posixPermissions: 0o600]) else {
            throw CLIError("could not write the default certificate's key to \(files.keyPath)")
        }
        try certificate.serializeAsPEM().pemString.write(toFile: files.certificatePath, atomically: true, encoding: .utf8)
        return files
    }
}
