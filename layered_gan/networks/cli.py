"""`layered-gan convert SRC OUT`: a StyleGAN2 generator file in the port layout or as a checkpoint of ours."""

import click

from ..convert import LAYOUTS, convert as convert_file


@click.command(name="convert")
@click.argument("src", type=click.Path(exists=True))
@click.argument("out", type=click.Path())
@click.option("--layout", type=click.Choice(LAYOUTS), default="port", show_default=True,
              help="port: the StyleGAN2 port's torch.save dict (g_ema, latent_avg, d); ours: a stylegan2-mode "
                   "checkpoint (config, G_ema, D) for model.init / model.ckpt.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
def convert(src, out, layout, overwrite):
    """Convert SRC (an NVIDIA TensorFlow or stylegan2-ada-pytorch .pkl, a StyleGAN2-port .pt, or a run of ours)
    to OUT. Pickles are read without TensorFlow and without running any code they carry."""
    convert_file(src, out, layout, overwrite)
    click.echo(f"wrote {out} ({layout} layout)")
