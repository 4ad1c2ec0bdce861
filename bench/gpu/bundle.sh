#!/bin/bash
# Run HERE (the build machine) before a device run: packs .gpu/ with what the GPU machine cannot build
# (it has no Maven and perhaps no Java): a jlink'ed JRE, the library and its runtime jars, the JUnit
# console launcher with the test classes, the JMH benchmark classes without libtorch, and the native harness.
# Then: device run with carry [".gpu"] and command "bash bench/gpu/java.sh".
set -euo pipefail
cd "$(dirname "$0")/../.."
mvn -q -B -ntp -DskipTests install
(cd bench && mvn -q -B -ntp package)
mkdir -p "$(git rev-parse --git-dir)/info" # the shared script records .gpu/ there
bash ../shared/gpu/bundle.sh .gpu
mvn -q -B -ntp dependency:copy -Dartifact=org.junit.platform:junit-platform-console-standalone:1.14.1 \
    -DoutputDirectory=.gpu/junit
cp -r target/test-classes .gpu/test-classes
(cd bench && mvn -q -B -ntp dependency:copy-dependencies -DincludeScope=runtime \
    -DexcludeArtifactIds=pytorch,openblas,mmfuse,javacpp,cuda -DoutputDirectory=../.gpu/bench-lib)
cp -r bench/target/classes .gpu/bench-classes
mkdir -p .gpu/native && cp target/native/mmfuse_harness .gpu/native/ # its libmmfuse.so is the jar's
du -sh .gpu
