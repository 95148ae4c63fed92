-- expect: error 4:25 must be a time unit
SELECT count(*)
FROM sensor
GROUP BY TUMBLINGWINDOW(seconds, 10)
