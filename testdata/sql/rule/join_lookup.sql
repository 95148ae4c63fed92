-- expect: ok
SELECT s.deviceId, d.name, s.location->lat AS lat, s.tags[0] AS first_tag
FROM sensor AS s
LEFT JOIN devices AS d ON s.deviceId = d.id
WHERE d.name LIKE "line-%"
