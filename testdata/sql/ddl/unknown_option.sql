-- expect: error 3:30 unknown option `QOS`
CREATE STREAM sensor ()
WITH (DATASOURCE = "sensor", QOS = "1")
