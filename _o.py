import jax, jax.numpy as jnp, time, tempfile
from flax import nnx
import jgen
from jgen.diffusion import nets, train as T, schedules
d = jgen.datasets.load_digits()
x = jnp.asarray(d.x_train*2-1); y = jnp.asarray(d.y_train)
print(d._fields if hasattr(d,'_fields') else d)
m = nets.MLPDenoiser((64,), 10, width=128, depth=2, rngs=nnx.Rngs(0))
cfg = T.TrainConfig(num_steps=300, batch_size=64, checkpoint_every=100, log_every=50)
t=time.time()
w = tempfile.mkdtemp()
r = T.train(m, x, y, schedule=schedules.linear_schedule(), config=cfg, workdir=w, progress=True)
print(time.time()-t, r.last_loss, r.resumed_from)
print(open(w+'/metrics.jsonl').read())
import os; print(os.listdir(w+'/checkpoints'))
r2 = T.train(m, x, y, schedule=schedules.linear_schedule(), config=cfg._replace(num_steps=350), workdir=w, progress=False)
print(r2.resumed_from, r2.last_loss)
