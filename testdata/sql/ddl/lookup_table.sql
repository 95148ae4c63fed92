-- expect: ok
create table devices (id BIGINT, name STRING)
with (datasource='devices.json', type='file', kind='lookup', key='id')
