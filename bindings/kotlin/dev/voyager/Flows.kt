// Idiomatic Kotlin over the generated bindings: an answer as a Flow of text pieces.
// Shipped with the Android library and compiled with the JVM tests.
package dev.voyager

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.channels.trySendBlocking
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.launch

/**
 * Sends [text] and emits the answer's text as it streams. Cancelling the collector (or the
 * scope it runs in) cancels the answer within one token; an engine error fails the flow with
 * its [VoyagerException].
 */
fun Chat.sendFlow(text: String): Flow<String> = callbackFlow {
    val chat = this@sendFlow
    launch(Dispatchers.IO) {
        try {
            chat.send(text, object : TokenListener {
                // Waits for the collector when it is slower than the model; false once the
                // flow is closed stops the answer.
                override fun onToken(piece: String): Boolean = trySendBlocking(piece).isSuccess
            })
            close()
        } catch (e: VoyagerException) {
            close(e)
        }
    }
    awaitClose { chat.cancel() }
}.buffer(64)

/** [Engine.complete] as a Flow of text pieces; cancelling the collector stops it. */
fun Engine.completeFlow(prompt: String, sampling: SamplingConfig, maxTokens: UInt): Flow<String> =
    callbackFlow {
        val engine = this@completeFlow
        launch(Dispatchers.IO) {
            try {
                engine.complete(prompt, sampling, maxTokens, object : TokenListener {
                    override fun onToken(piece: String): Boolean = trySendBlocking(piece).isSuccess
                })
                close()
            } catch (e: VoyagerException) {
                close(e)
            }
        }
        awaitClose { }
    }.buffer(64)
