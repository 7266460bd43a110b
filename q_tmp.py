import numpy as np, os
from netspec.data.lmdb_io import LMDBReader
from netspec.data.datum import parse_datum, datum_to_array
from netspec.data.image import read_image, GRAY, COLOR
from PIL import Image
r = LMDBReader("tests/golden/data/lmdb_gray")
for k in r.keys:
    k=k.decode(); d = datum_to_array(parse_datum(r.get(r.keys.index(k.encode()))))
    name = k.split("_",1)[1]
    ours = read_image("tests/golden/data/images/"+name, GRAY)
    diff = ours.astype(int)-d
    print(k, d.shape, np.abs(diff).max(), (diff!=0).mean(), np.unique(diff))
    if name.endswith("jpg"):
        im = Image.open("tests/golden/data/images/"+name); rgb=np.asarray(im.convert("RGB")).astype(int)
        for f in [lambda r,g,b:(9798*r+19235*g+3735*b+16384)>>15, lambda r,g,b:(r*19595+g*38470+b*7471+0x8000)>>16, lambda r,g,b: (4899*r+9617*g+1868*b+8192)>>14]:
            print("  alt", np.abs(f(*rgb.transpose(2,0,1))-d[0]).max())
