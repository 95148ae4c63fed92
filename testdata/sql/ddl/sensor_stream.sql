-- expect: ok
CREATE STREAM sensor (
  deviceId    STRING,
  temperature FLOAT,
  humidity    BIGINT,
  ts          DATETIME,
  tags        ARRAY(STRING),
  location    STRUCT(lat FLOAT, lng FLOAT)
) WITH (
  DATASOURCE = "devices/+/telemetry",
  FORMAT     = "json",
  TYPE       = "mqtt",
  TIMESTAMP  = "ts",
  SHARED     = "true"
);
