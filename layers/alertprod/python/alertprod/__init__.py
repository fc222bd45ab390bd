"""alertprod: serverless alert production for time-domain astronomy.

Subpackages are named after the science steps they implement:

- :mod:`alertprod.formats`     the upload contract: object keys, exposure and catalog FITS I/O
- :mod:`alertprod.ingest`      validation of uploads and quarantine
- :mod:`alertprod.imaging`     PSFs, image subtraction, detection, cutouts
- :mod:`alertprod.photometry`  forced PSF photometry
- :mod:`alertprod.orbits`      MPCORB orbits and topocentric ephemerides
- :mod:`alertprod.sky`         the survey simulator
- :mod:`alertprod.apdb`        the Level 1 database on DynamoDB
- :mod:`alertprod.association` DiaSource to DiaObject/SSObject association
- :mod:`alertprod.summary`     DiaObject summary quantities
- :mod:`alertprod.alerts`      alert packets, publishing and the consumer client
- :mod:`alertprod.pipeline`    the per-CCD nightly processing
- :mod:`alertprod.precovery`   daytime precovery on the difference-image cache
- :mod:`alertprod.aws`         boto3 adapters (the only place boto3 is imported)
- :mod:`alertprod.local`       the embedded AWS stack for one machine
"""

__version__ = "0.1.0"
