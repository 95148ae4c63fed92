-- expect: error 3:1 a rule must be a single SELECT statement
SELECT * FROM sensor;
SELECT * FROM devices
