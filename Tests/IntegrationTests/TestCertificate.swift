import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// A fresh self-signed certificate for `localhost` / 127.0.0.1, made in the test process.
enum TestCertificate {
    static func make() throws -> (certificate: NIOSSLCertificate, key: NIOSSLPrivateKey) {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName("localhost") }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 3600, issuer: name, subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                SubjectAlternativeNames([.dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))])
            },
            issuerPrivateKey: .init(key))
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return (try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der),
                try NIOSSLPrivateKey(bytes: Array(key.derRepresentation), format: .der))
    }
}
