// The Kotlin SDK on the JVM against the real SmolLM2: what the Python tests check, plus the
// suspend function and the Flow API. Run by scripts/test-bindings.
import dev.voyager.*
import java.io.File
import kotlin.system.exitProcess
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking

val MODEL: String = System.getenv("VOYAGER_MODEL_PATH")
val BIN: String = System.getenv("VOYAGER_BIN")
const val WINDOW = 252u
val GREEDY = SamplingConfig(temperature = 0.0f, maxTokens = 8u)

fun check(ok: Boolean, what: () -> String) {
    if (!ok) throw AssertionError(what())
}

inline fun <reified T : Throwable> expect(block: () -> Unit): T {
    try {
        block()
    } catch (e: Throwable) {
        if (e is T) return e
        throw AssertionError("expected ${T::class.simpleName}, got $e")
    }
    throw AssertionError("expected ${T::class.simpleName}, nothing was thrown")
}

class Collect(private val stopAfter: Int? = null, private val onPiece: ((Int) -> Unit)? = null) :
    TokenListener {
    val pieces: MutableList<String> = java.util.Collections.synchronizedList(mutableListOf())

    override fun onToken(piece: String): Boolean {
        pieces.add(piece)
        onPiece?.invoke(pieces.size)
        return stopAfter == null || pieces.size < stopAfter
    }
}

class Throws : TokenListener {
    override fun onToken(piece: String): Boolean = throw IllegalStateException("listener failed")
}

fun cliText(prompt: String): String {
    val p = ProcessBuilder(BIN, "run", "-m", MODEL, "--window", "$WINDOW", "--temp", "0",
        "-n", "8", "--json", "--", prompt).redirectError(ProcessBuilder.Redirect.DISCARD).start()
    val out = p.inputStream.bufferedReader().readText()
    check(p.waitFor() == 0) { "voyager run failed" }
    return jsonString(out, "text")
}

/** The string value of `key` in a flat JSON object (enough for `voyager run --json`). */
fun jsonString(json: String, key: String): String {
    var i = json.indexOf("\"$key\":") + key.length + 3
    while (json[i] != '"') i++
    val sb = StringBuilder()
    i++
    while (json[i] != '"') {
        if (json[i] == '\\') {
            i++
            when (json[i]) {
                'n' -> sb.append('\n')
                't' -> sb.append('\t')
                'r' -> sb.append('\r')
                'u' -> {
                    sb.append(json.substring(i + 1, i + 5).toInt(16).toChar())
                    i += 4
                }
                else -> sb.append(json[i])
            }
        } else {
            sb.append(json[i])
        }
        i++
    }
    return sb.toString()
}

fun main() {
    // A budget of exactly what two sessions need: a third is refused. The driver's memory is
    // given, so that the plan and the load count the same figure (measured, it varies).
    val config = EngineConfig(window = WINDOW, maxSessions = 2u, driverMemoryBytes = 160uL shl 20)
    val two = plan(MODEL, config)
    val engine = Engine(MODEL, config.copy(memBudgetBytes = two.totalBytes))
    val tests = linkedMapOf<String, () -> Unit>(
        "complete greedy equals the CLI, streamed" to {
            val prompt = "The capital of France is"
            val c = Collect()
            val reply = engine.complete(prompt, GREEDY, 8u, c)
            check(reply.text == cliText(prompt)) { "'${reply.text}' vs the CLI's" }
            check(c.pieces.joinToString("") == reply.text) { "streamed pieces differ" }
            check(reply.stopReason == StopReason.TOKEN_LIMIT) { "${reply.stopReason}" }
            check(reply.stats.generatedTokens == 8u) { "${reply.stats}" }
        },
        "two chats, regenerate, reset, a third refused" to {
            engine.chat("You are terse.", GREEDY).use { a ->
                engine.chat(null, GREEDY).use { b ->
                    val first = a.send("Name a fruit.", Collect())
                    check(b.send("Name a fruit.", Collect()).text.isNotEmpty()) { "empty" }
                    check(a.messages().map { it.role } == listOf("system", "user", "assistant")) {
                        "${a.messages()}"
                    }
                    val second = a.send("And a vegetable?", Collect())
                    check(second.stats.reusedTokens >= first.stats.promptTokens) { "no reuse" }
                    val again = a.regenerate(Collect())
                    check(again.text == second.text) { "regenerate differs" }
                    check(a.contextUsage().contextSize == WINDOW + 4u) { "${a.contextUsage()}" }
                    a.reset()
                    check(a.messages().size == 1) { "reset kept ${a.messages()}" }
                    expect<VoyagerException.Budget> { engine.chat(null, GREEDY) }
                }
            }
        },
        "cancel from another thread within a token" to {
            engine.chat(null, SamplingConfig(temperature = 0.0f, maxTokens = 200u)).use { chat ->
                var atCancel = 0
                val c = Collect(onPiece = { n ->
                    if (n == 3) {
                        atCancel = n
                        Thread { chat.cancel() }.start()
                    }
                })
                val reply = chat.send("Tell me a long story about a dragon.", c)
                check(reply.stopReason == StopReason.CANCELLED) { "${reply.stopReason}" }
                check(c.pieces.size <= atCancel + 2) { "${c.pieces.size} pieces after cancel" }
            }
        },
        "suspend sendAsync" to {
            engine.chat(null, GREEDY).use { chat ->
                val reply = runBlocking { chat.sendAsync("Say hi.", Collect()) }
                check(reply.stats.generatedTokens == 8u) { "${reply.stats}" }
            }
        },
        "Flow: whole answer, and cancelled by take()" to {
            engine.chat(null, GREEDY).use { chat ->
                val pieces = runBlocking { chat.sendFlow("Say hi.").toList() }
                check(pieces.joinToString("") == chat.messages().last().content) { "$pieces" }
            }
            engine.chat(null, SamplingConfig(temperature = 0.0f, maxTokens = 200u)).use { chat ->
                val two = runBlocking { chat.sendFlow("Tell me a long story.").take(2).toList() }
                check(two.size == 2) { "$two" }
                // The collector stopped: the answer was cancelled and the chat is free again.
                val answer = chat.messages().last()
                check(answer.role == "assistant") { "$answer" }
                val next = chat.send("Thanks.", Collect(stopAfter = 2))
                check(next.stopReason == StopReason.CANCELLED) { "${next.stopReason}" }
                check(next.stats.generatedTokens in 1u..4u) { "${next.stats}" }
            }
            val text = runBlocking { engine.completeFlow("Once upon", GREEDY, 4u).toList() }
            check(text.isNotEmpty()) { "no pieces" }
        },
        "error kinds" to {
            expect<VoyagerException.Io> { Engine("/nonexistent/model.gguf", EngineConfig()) }
            val bad = File.createTempFile("broken", ".gguf")
            bad.writeBytes(byteArrayOf(71, 71, 85, 70, 3, 0, 0, 0) + ByteArray(64) { -1 })
            expect<VoyagerException.InvalidModel> { Engine(bad.path, EngineConfig()) }
            bad.delete()
            val e = expect<VoyagerException.Budget> {
                Engine(MODEL, EngineConfig(memBudgetBytes = 32uL shl 20))
            }
            check((e.smallestBudgetBytes ?: 0uL) > (32uL shl 20)) { "$e" }
            expect<VoyagerException.InvalidArgument> {
                engine.chat(null, SamplingConfig(topP = 0.0f))
            }
            expect<VoyagerException.Listener> { engine.complete("Hello", GREEDY, 4u, Throws()) }
            expect<VoyagerException.Internal> { debugPanic("provoked by the test") }
            check(engine.complete("Hi", GREEDY, 2u, Collect()).stats.generatedTokens == 2u) {
                "the engine stopped working"
            }
        },
        "plan without loading" to {
            val plan = plan(MODEL, EngineConfig(memBudgetBytes = 400uL shl 20))
            check(plan.totalBytes <= (400uL shl 20)) { "$plan" }
            expect<VoyagerException.Budget> { plan(MODEL, EngineConfig(memBudgetBytes = 10uL shl 20)) }
            // The importance policy's slot table costs memory: a budget that bounds the window
            // (under the model's context) holds a smaller one.
            val tight = EngineConfig(memBudgetBytes = 270uL shl 20, driverMemoryBytes = 128uL shl 20)
            val win = plan(MODEL, tight)
            val kept = plan(MODEL, tight.copy(kvPolicy = "importance"))
            check(kept.kvPolicy == "importance" && kept.window < win.window) { "$kept vs $win" }
            expect<VoyagerException.InvalidArgument> { plan(MODEL, EngineConfig(kvPolicy = "lru")) }
            check(engine.modelInfo().architecture == "llama") { "${engine.modelInfo()}" }
            check(engine.memoryInUse().deviceBytes > 0uL) { "${engine.memoryInUse()}" }
        },
    )
    var failed = 0
    for ((name, test) in tests) {
        try {
            test()
            println("ok    $name")
        } catch (e: Throwable) {
            failed++
            println("FAIL  $name: $e")
            e.printStackTrace()
        }
    }
    engine.close()
    println("${tests.size - failed} passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
