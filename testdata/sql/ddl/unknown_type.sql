-- expect: error 4:12 unknown type `DOUBLE`
CREATE STREAM sensor (
  deviceId STRING,
  value    DOUBLE
) WITH (DATASOURCE = "sensor")
