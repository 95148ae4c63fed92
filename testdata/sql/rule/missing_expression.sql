-- expect: error 4:1 expected an expression, found GROUP
SELECT temperature FROM sensor
WHERE temperature >
GROUP BY TUMBLINGWINDOW(ss, 10)
