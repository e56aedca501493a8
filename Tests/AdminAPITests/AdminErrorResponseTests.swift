import Testing
import Core
import AdminAPI

struct AdminErrorResponseTests {
    @Test(arguments: [
        (KongError.Code.schemaViolation, 400), (.uniqueViolation, 409), (.notFound, 404),
        (.operationUnsupported, 405), (.foreignKeyViolation, 400), (.invalidDeclarativeConfiguration, 400),
    ])
    func statusPerCode(code: KongError.Code, status: Int) {
        let error = KongError(code: code, message: "m")
        let response = AdminErrorResponse(error)
        #expect(response.status == status)
        #expect(response.body == error.json)
    }

    @Test func databaseErrorsHideDetails() {
        let response = AdminErrorResponse(KongError(code: .databaseError, message: "disk I/O error at /var/lib/x"))
        #expect(response.status == 500)
        #expect(response.body == ["message": "An unexpected error occurred"])
    }
}
