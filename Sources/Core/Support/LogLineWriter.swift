#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Appends whole log lines to an open descriptor. A regular file opened `O_APPEND` takes a
/// batch of lines in one `write(2)` (whole lines only, so another writer's lines never cut into
/// them; nginx without `buffer=` writes each line by itself); a pipe, FIFO or terminal
/// (`/dev/stdout` in a container) takes one write per line, atomic only up to `PIPE_BUF` bytes,
/// which a line fits and a batch does not. The access log and file-log write through it.
public enum LogLineWriter {
    /// Whether batches may go out whole (the descriptor is a regular file).
    public static func takesWholeBatches(_ descriptor: Int32) -> Bool {
        var status = stat()
        return fstat(descriptor, &status) == 0 && status.st_mode & S_IFMT == S_IFREG
    }

    /// Writes `bytes` (ending with a line's end), retrying short writes. On an error `failed`
    /// gets `errno`: a batch is dropped whole; line by line, only the line that failed is.
    public static func write(lines bytes: UnsafeRawBufferPointer, to descriptor: Int32, wholeBatches: Bool,
                             failed: (Int32) -> Void) {
        if wholeBatches { writeAll(bytes, to: descriptor, failed: failed); return }
        var lineStart = 0
        while let newline = bytes[lineStart...].firstIndex(of: UInt8(ascii: "\n")) {
            writeAll(UnsafeRawBufferPointer(rebasing: bytes[lineStart...newline]), to: descriptor, failed: failed)
            lineStart = newline + 1
        }
    }

    @discardableResult
    private static func writeAll(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32, failed: (Int32) -> Void) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(descriptor, base + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                failed(errno)
                return false
            }
            offset += written
        }
        return true
    }
}
