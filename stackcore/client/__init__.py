"""``stackcore-client``: a resource CLI in the OpenStack client's style (cliff), a client of a
deployment's database and RabbitMQ (``Cloud(config_file, services=())``). See doc/source/cli.rst.
"""
