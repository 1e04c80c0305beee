"""JVM settings for the Spark drivers of the tests, whose data is small (a standard JVM option
string, valid for `spark.driver.extraJavaOptions` and `JAVA_TOOL_OPTIONS` alike)."""

#: The quick client compiler only, and the serial collector. On test-sized data the optimising
#: JIT's compiler threads and the parallel GC threads are most of a short Spark driver's CPU
#: (README "Tests"); real volumes want the JVM's defaults, so the product never sets these.
SMALL_DATA_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
