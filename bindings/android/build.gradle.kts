// dev.voyager:voyager-android: the Kotlin bindings (generated at build time by
// scripts/bindings), the Flow wrapper, and libvoyager_sdk.so for arm64-v8a and x86_64 (built
// by cargo-ndk with 16 KB pages). scripts/build-android runs the whole chain.
plugins {
    id("com.android.library") version "8.7.3"
    id("org.jetbrains.kotlin.android") version "2.1.0"
}

val repo = rootDir.resolve("../..")
val generated = layout.buildDirectory.dir("generated/voyager/kotlin")
val jniLibsDir = layout.buildDirectory.dir("generated/voyager/jniLibs")

android {
    namespace = "dev.voyager"
    compileSdk = 35
    defaultConfig {
        minSdk = 26
        consumerProguardFiles("consumer-rules.pro")
    }
    sourceSets["main"].apply {
        java.srcDir(generated)
        java.srcDir(repo.resolve("bindings/kotlin"))
        jniLibs.srcDir(jniLibsDir)
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
        allWarningsAsErrors = true
    }
}

dependencies {
    // JNA 5.15.0 and later load native libraries from 16 KB-page-aligned APKs.
    implementation("net.java.dev.jna:jna:5.17.0@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.10.2")
}

// The native library for each ABI, linked for 16 KB pages (Android 15+ devices require it).
val cargoNdk = tasks.register<Exec>("cargoNdk") {
    workingDir = repo
    environment("RUSTFLAGS", "-C link-arg=-Wl,-z,max-page-size=16384")
    commandLine(
        "cargo", "ndk", "-t", "arm64-v8a", "-t", "x86_64", "--platform", "26",
        "-o", jniLibsDir.get().asFile.path, "build", "--release", "-p", "voyager-bindings",
    )
}

// The Kotlin sources, generated from a host build of the same library.
val generateKotlin = tasks.register<Exec>("generateVoyagerKotlin") {
    workingDir = repo
    commandLine("scripts/bindings", "kotlin", generated.get().asFile.path, "--release")
    doLast { generated.get().asFile.listFiles { f -> f.extension != "kt" && f.isFile }?.forEach { it.delete() } }
}

tasks.named("preBuild") { dependsOn(cargoNdk, generateKotlin) }
