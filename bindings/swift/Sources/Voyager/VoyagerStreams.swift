// Idiomatic Swift over the generated bindings: an answer as an AsyncThrowingStream of text
// pieces. Cancelling the task that iterates it (or breaking out of the loop) cancels the
// answer within one token.
import Foundation

private final class StreamListener: TokenListener, @unchecked Sendable {
    private let continuation: AsyncThrowingStream<String, Error>.Continuation

    init(_ continuation: AsyncThrowingStream<String, Error>.Continuation) {
        self.continuation = continuation
    }

    func onToken(piece: String) throws -> Bool {
        if case .terminated = continuation.yield(piece) {
            return false
        }
        return true
    }
}

extension Chat {
    /// Sends `text` and yields the answer's text as it streams.
    public func stream(_ text: String) -> AsyncThrowingStream<String, Error> {
        AsyncThrowingStream { continuation in
            let listener = StreamListener(continuation)
            continuation.onTermination = { [weak self] termination in
                if case .cancelled = termination {
                    self?.cancel()
                }
            }
            Thread { [self] in
                do {
                    _ = try self.send(text: text, listener: listener)
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }.start()
        }
    }
}

extension Engine {
    /// Continues `prompt` and yields the text as it streams; breaking out stops it.
    public func stream(
        _ prompt: String, sampling: SamplingConfig, maxTokens: UInt32
    ) -> AsyncThrowingStream<String, Error> {
        AsyncThrowingStream { continuation in
            let listener = StreamListener(continuation)
            Thread { [self] in
                do {
                    _ = try self.complete(
                        prompt: prompt, sampling: sampling, maxTokens: maxTokens,
                        listener: listener)
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }.start()
        }
    }
}
