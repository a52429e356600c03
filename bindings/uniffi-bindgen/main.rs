//! The workspace's `uniffi-bindgen`: generates the Swift, Kotlin and Python sources from the
//! built library (`scripts/bindings LANG OUTDIR` runs it).

fn main() {
    uniffi::uniffi_bindgen_main()
}
