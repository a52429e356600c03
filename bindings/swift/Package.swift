// swift-tools-version:5.9
// The Voyager Swift package: the Rust library as an XCFramework (a binary target built by
// scripts/build-xcframework on macOS) plus the generated Swift bindings and the hand-written
// AsyncThrowingStream wrapper.
import PackageDescription

let package = Package(
    name: "Voyager",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [
        .library(name: "Voyager", targets: ["Voyager"]),
    ],
    targets: [
        // Built by scripts/build-xcframework: ios (arm64), ios-simulator (arm64), macos (arm64).
        .binaryTarget(name: "VoyagerFFI", path: "VoyagerFFI.xcframework"),
        // Voyager.swift is generated into this folder by scripts/build-xcframework;
        // VoyagerStreams.swift is ours.
        .target(
            name: "Voyager",
            dependencies: ["VoyagerFFI"],
            path: "Sources/Voyager",
            linkerSettings: [.linkedFramework("Metal"), .linkedFramework("QuartzCore")]
        ),
    ]
)
