// The Voyager Android library, built on its own (scripts/build-android) or included in an
// app's build with includeBuild("path/to/voyager/bindings/android").
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "voyager-android"
