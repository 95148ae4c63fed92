-- expect: ok
CREATE STREAM sensor ()
WITH (DATASOURCE = "sensor", QOS = "1")
