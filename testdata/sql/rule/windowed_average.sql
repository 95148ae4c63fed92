-- expect: ok
SELECT deviceId,
       avg(temperature) AS avg_t,
       window_end() AS at
FROM sensor
WHERE temperature > 0
GROUP BY deviceId, HOPPINGWINDOW(ss, 60, 10)
HAVING avg_t > 30
ORDER BY avg_t DESC
